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
BIN=${AB_SPLIT:-target/release/examples/ab_split}
ROUNDS=${1:-5}
LINES=${LINES:-1000000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir/requests.jsonl" "$LINES" <<'EOF'
import json, random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"user_id": random.randrange(100000), "ad_id": random.randrange(50),
                            "score": round(random.random(), 4), "time": i}) + "\n")
EOF
cat "$dir/requests.jsonl" > /dev/null

# run NAME PROCESSES [OPTIONS...]: one run, prints its wall seconds.
run() {
    local processes=$1; shift
    local out="$dir/out"; rm -rf "$out"; mkdir "$out"
    local start end
    start=$(date +%s.%N)
    if [ "$processes" = 1 ]; then
        "$BIN" --requests "$dir/requests.jsonl" --served "$out/served.jsonl" \
            --dead-letters "$out/bad.jsonl" -q "$@"
    else
        : > "$dir/hosts"
        for i in $(seq 0 $((processes - 1))); do echo "127.0.0.1:$((26101 + i))" >> "$dir/hosts"; done
        local pids=()
        for i in $(seq 0 $((processes - 1))); do
            "$BIN" --requests "$dir/requests.jsonl" --served "$out/served.jsonl" \
                --dead-letters "$out/bad.jsonl" -q --processes "$processes" --process "$i" \
                --hostfile "$dir/hosts" "$@" &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid"; done
    fi
    end=$(date +%s.%N)
    # Every variant writes the same lines (in parts).
    local count
    count=$(cat "$out"/served*.jsonl | wc -l)
    echo "$count" >> "$dir/counts"
    printf '0%s\n' "$(echo "$end - $start" | bc -l)"
}

declare -A total
names=(single workers_2 processes_2 processes_4)
for round in $(seq 1 "$ROUNDS"); do
    for name in "${names[@]}"; do
        case $name in
            single) t=$(run 1) ;;
            workers_2) t=$(run 1 --workers 2) ;;
            processes_2) t=$(run 2) ;;
            processes_4) t=$(run 4) ;;
        esac
        total[$name]=$(echo "${total[$name]:-0} + $t" | bc -l)
        printf 'round %d %-12s %.3f s\n' "$round" "$name" "$t"
    done
done
if [ "$(sort -u "$dir/counts" | wc -l)" != 1 ]; then
    echo "the variants wrote different numbers of lines:"; sort "$dir/counts" | uniq -c; exit 1
fi
echo "lines written per run: $(head -1 "$dir/counts"); CPUs: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
single=$(echo "${total[single]} / $ROUNDS" | bc -l)
for name in "${names[@]}"; do
    mean=$(echo "${total[$name]} / $ROUNDS" | bc -l)
    printf '%-12s mean %.3f s  speed vs single %.2fx\n' "$name" "$mean" "$(echo "$single / $mean" | bc -l)"
done
