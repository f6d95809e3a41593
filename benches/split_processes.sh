#!/usr/bin/env bash
# The `ab_split` binary on 1,000,000 requests (76 MB of JSON lines, read from the page cache;
# parse, filter, sticky 50/50 split, tag, write JSON lines): one process as today, 2 workers in
# one process, and 2 and 4 processes on 127.0.0.1 — wall time from the first process's start
# to the last one's exit, connection set-up and commit included. Rounds are interleaved; prints
# each variant's mean and its ratio to the single run's (how many times faster).
#
#   CARGO_TARGET_DIR=/work/target-bench cargo build --release --example ab_split
#   AB_SPLIT=/work/target-bench/release/examples/ab_split benches/split_processes.sh 5
#
# Not part of CI (a benchmark, not a test).
set -euo pipefail
. "$(dirname "$0")/interleave.sh"
BIN=${AB_SPLIT:-target/release/examples/ab_split}
ROUNDS=${1:-5}
LINES=${LINES:-1000000}
python3 - "$dir/requests.jsonl" "$LINES" <<'EOF'
import json, random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"user_id": random.randrange(100000), "ad_id": random.randrange(50),
                            "score": round(random.random(), 4), "time": i}) + "\n")
EOF
cat "$dir/requests.jsonl" > /dev/null

# run PROCESSES [OPTIONS...]: one run, prints its wall seconds.
run() {
    local processes=$1; shift
    local out="$dir/out"; rm -rf "$out"; mkdir "$out"
    local start
    start=$(date +%s.%N)
    if [ "$processes" = 1 ]; then
        "$BIN" --requests "$dir/requests.jsonl" --served "$out/served.jsonl" \
            --dead-letters "$out/bad.jsonl" -q "$@"
    else
        hostfile "$dir/hosts" "$processes" 26101
        local pids=()
        for i in $(seq 0 $((processes - 1))); do
            "$BIN" --requests "$dir/requests.jsonl" --served "$out/served.jsonl" \
                --dead-letters "$out/bad.jsonl" -q --processes "$processes" --process "$i" \
                --hostfile "$dir/hosts" "$@" &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid"; done
    fi
    seconds_since "$start"
    # Every variant writes the same lines (in parts).
    cat "$out"/served*.jsonl | wc -l >> "$dir/counts"
}

variant() {
    case $1 in
        single) run 1 ;;
        workers_2) run 1 --workers 2 ;;
        processes_2) run 2 ;;
        processes_4) run 4 ;;
    esac
}

names=(single workers_2 processes_2 processes_4)
interleave "$ROUNDS"
if [ "$(sort -u "$dir/counts" | wc -l)" != 1 ]; then
    echo "the variants wrote different numbers of lines:"; sort "$dir/counts" | uniq -c; exit 1
fi
echo "lines written per run: $(head -1 "$dir/counts")"
