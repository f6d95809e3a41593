# Sourced by the benchmark scripts that time whole binaries (split_processes.sh,
# split_ab_test.sh): interleaved rounds of named variants, and each variant's mean.
#
# The caller sets `names` (the variants, the first being the reference) and defines
# `variant NAME`, which runs NAME once and prints its wall time in seconds. `dir` is a temporary
# folder for the runs, removed at exit.

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# hostfile FILE PROCESSES FIRST_PORT: a hostfile of PROCESSES processes on 127.0.0.1.
hostfile() {
    : > "$1"
    for i in $(seq 0 $(($2 - 1))); do echo "127.0.0.1:$(($3 + i))" >> "$1"; done
}

# seconds_since START: wall seconds since START (from `date +%s.%N`), with a leading 0.
seconds_since() {
    printf '0%s\n' "$(echo "$(date +%s.%N) - $1" | bc -l)"
}

# interleave ROUNDS: each round runs every variant once, in order; prints every time, then each
# variant's mean and how many times faster than the first variant it is.
interleave() {
    local rounds=$1 round name t
    declare -A total
    for round in $(seq 1 "$rounds"); do
        for name in "${names[@]}"; do
            t=$(variant "$name")
            total[$name]=$(echo "${total[$name]:-0} + $t" | bc -l)
            printf 'round %d %-12s %.3f s\n' "$round" "$name" "$t"
        done
    done
    echo "CPUs: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
    local first mean
    first=$(echo "${total[${names[0]}]} / $rounds" | bc -l)
    for name in "${names[@]}"; do
        mean=$(echo "${total[$name]} / $rounds" | bc -l)
        printf '%-12s mean %.3f s  speed vs %s %.2fx\n' "$name" "$mean" "${names[0]}" \
            "$(echo "$first / $mean" | bc -l)"
    done
}
