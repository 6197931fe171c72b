# shellcheck shell=bash
# Helpers of the bench's scripts (bench/run.sh, bench/api.sh, bench/rebalance.sh,
# bench/import.sh), sourced after they set BENCH_ROW (the row letter their messages name; none
# for run.sh, whose messages say FAILED).
log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() {
    if [[ -n ${BENCH_ROW:-} ]]; then log "($BENCH_ROW) $*"; else log "FAILED: $*"; fi
    exit 1
}
now_ms() { date +%s%3N; }
sql() { psql "$CASESTREAM_PG" -XAtqc "$1"; }
# A TCP port free on loopback now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU time in clock ticks (HZ a second): of a process, of a process and its children (a
# service of the stack: PostgreSQL's backends), of the machine (total and idle). A process's
# own count takes in its children that ended and were waited for (cutime, cstime), so that a
# backend or an autovacuum worker that ends between two counts still counts in both.
HZ=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
tree_ticks() { # pid
    local t=0 p
    for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do t=$((t + $(ticks "$p"))); done
    echo $t
}
machine_ticks() { awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6 }' /proc/stat; } # total idle
steal_ticks() { awk '/^cpu / { print $9 }' /proc/stat; } # the hypervisor's: what this VM was ready to run but did not get
stack_pid() { scripts/stack.sh status 2>/dev/null | awk -v s="$1" '$1 == s { print $3 }'; }

# A histogram NAME (with its labels, e.g. 'x_seconds{op="read"}') between two /metrics scrapes
# (files): "count mean p50 p99" in ms, p50 and p99 as the upper bound of their bucket ("inf" past
# the last; null when empty).
stage() { # before after name
    local base=${3%%\{*} labels="" braced=""
    if [[ $3 == *\{* ]]; then
        braced="{${3#*\{}"
        labels=${braced#\{}
        labels=${labels%\}},
    fi
    awk -v b="${base}_bucket{${labels}le=\"" -v s="${base}_sum$braced" -v c="${base}_count$braced" '
        FNR == 1 { f++ }
        index($1, b) == 1 { le = substr($1, length(b) + 1); sub(/"}$/, "", le); v[f, le] = $2; if (f == 2) order[++n] = le }
        $1 == s { sum[f] = $2 } $1 == c { cnt[f] = $2 }
        END { total = cnt[2] - cnt[1]
              if (total <= 0) { print 0, "null", "null", "null"; exit }
              for (q = 1; q <= 2; q++) { want = (q == 1 ? 0.5 : 0.99) * total; r[q] = "null"
                  for (i = 1; i <= n; i++) if (v[2, order[i]] - v[1, order[i]] >= want) {
                      r[q] = (order[i] == "+Inf" ? "inf" : order[i] * 1000); break } }
              printf "%d %.1f %s %s\n", total, 1000 * (sum[2] - sum[1]) / total, r[1], r[2] }' "$1" "$2"
}

# Histograms between two scrapes, as a table cell and as JSON members: stage-list names an
# array of triples (JSON name, metric, what the cell calls it).
stages() { # stage-list before after -> sets STAGE_CELL and STAGE_JSON
    local -n list=$1
    local i n mean p50 p99
    shift
    STAGE_CELL="" STAGE_JSON=""
    for ((i = 0; i < ${#list[@]}; i += 3)); do
        read -r n mean p50 p99 < <(stage "$1" "$2" "${list[i + 1]}")
        STAGE_CELL+="${STAGE_CELL:+; }${list[i + 2]}: mean $mean, p50 ≤ $p50, p99 ≤ $p99 ms ($n)"
        [[ $p50 == inf ]] && p50='"inf"'
        [[ $p99 == inf ]] && p99='"inf"'
        STAGE_JSON+="${STAGE_JSON:+, }\"${list[i]}\": {\"n\": $n, \"mean_ms\": $mean, \"p50_le_ms\": $p50, \"p99_le_ms\": $p99}"
    done
}
