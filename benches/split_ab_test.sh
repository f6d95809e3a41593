#!/usr/bin/env bash
# The `ab_test` binary (the A/B test with its two rankers, windowed CTR per arm and the report) on
# 1,000,000 simulated requests: one process, 2 workers in one process, and 2 processes on
# 127.0.0.1 — wall time from the first process's start to the last one's exit (model loading,
# connection set-up, the exchange by key of the windows, the commit rounds and the report
# included). Rounds are interleaved; checks that every variant printed the same report and wrote
# the same windows, and prints each variant's mean and its ratio to the single run's.
#
#   CARGO_TARGET_DIR=/work/target-bench cargo build --release --example ab_test
#   AB_TEST=/work/target-bench/release/examples/ab_test benches/split_ab_test.sh 3
#
# The rankers are trained into $TANDEM_HOME/rankers first if they are missing (not timed).
# Not part of CI (a benchmark, not a test).
set -euo pipefail
. "$(dirname "$0")/interleave.sh"
BIN=${AB_TEST:-target/release/examples/ab_test}
ROUNDS=${1:-3}
TRAFFIC=${TRAFFIC:-1000000}
# Train the rankers if needed, untimed.
"$BIN" --traffic 1000 --device cpu -q --out "$dir/warm.jsonl" --chart "$dir/warm.svg" > /dev/null

# run NAME PROCESSES [OPTIONS...]: one run in a fresh folder, prints its wall seconds.
run() {
    local name=$1 processes=$2; shift 2
    local out="$dir/$name"; rm -rf "$out"; mkdir "$out"
    local start
    start=$(date +%s.%N)
    if [ "$processes" = 1 ]; then
        (cd "$out" && "$BIN" --traffic "$TRAFFIC" --device cpu -q --out windows.jsonl \
            --chart chart.svg "$@" > report.txt)
    else
        hostfile "$dir/hosts" "$processes" 27101
        local pids=()
        for i in $(seq 0 $((processes - 1))); do
            (cd "$out" && "$BIN" --traffic "$TRAFFIC" --device cpu -q --out windows.jsonl \
                --chart chart.svg --processes "$processes" --process "$i" \
                --hostfile "$dir/hosts" "$@" > "report-$i.txt") &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid"; done
        mv "$out/report-0.txt" "$out/report.txt"
    fi
    seconds_since "$start"
    # Every variant prints the same report and writes the same windows (in parts).
    cat "$out"/windows*.jsonl | sort | md5sum | cut -d' ' -f1 >> "$dir/windows"
    md5sum < "$out/report.txt" | cut -d' ' -f1 >> "$dir/reports"
}

variant() {
    case $1 in
        single) run single 1 ;;
        workers_2) run workers_2 1 --workers 2 ;;
        processes_2) run processes_2 2 ;;
    esac
}

names=(single workers_2 processes_2)
interleave "$ROUNDS"
for what in windows reports; do
    if [ "$(sort -u "$dir/$what" | wc -l)" != 1 ]; then
        echo "the variants' $what differ:"; sort "$dir/$what" | uniq -c; exit 1
    fi
done
echo "the same windows and report in every run"
