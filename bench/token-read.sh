#!/usr/bin/env bash
# Credential retrieval, GET /v1/token/{connection_id} (issue: connection broker). Target: >= 25,000 reads/s with
# p99 < 5 ms on 2 cores, wrk with 32 connections for 15 s, on SQLite and on PostgreSQL, client and server on this
# machine. For scale, the same wrk load runs against GET /healthz (a constant JSON answer that touches nothing),
# and the ratio says how much of the machine's HTTP ceiling the credential read reaches; and (issue #20, target
# >= 0.75x on SQLite, >= 0.6x on PostgreSQL) against the bare Kestrel GET of bench/tools/BareKestrel, in the same run.
#
# The connection is made active through Nexus's real handshake against bench/tools/FakeProvider on loopback
# (request-connection, the provider's redirect, /auth/callback, code exchange), then read with a gateway API key
# bound to its workspace.
#
# The three paths take turns, round after round (the order reversed every other round), and each figure is the median
# over the rounds, the ratios the median of each round's own: one 15 s run after another moved by ±10% on this shared
# machine, as much as the margin the targets are judged by.
#   bench/token-read.sh [seconds] [engines] [rounds]      engines: "sqlite postgres" (default), "sqlite" or "postgres";
#   rounds: 3 (default)
#   BENCH_PEERS=off   no bare Kestrel ceiling (a quicker run of Nexus alone)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-15}"
engines="${2:-sqlite postgres}"
rounds="${3:-3}"
need wrk curl
build_nexus
port=18090
fake_port=18091
bare_port=18098

fake_pid=""
bare_pid=""
cleanup() {
  stop_nexus
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null || true
  [ -n "$bare_pid" ] && kill "$bare_pid" 2>/dev/null && wait "$bare_pid" 2>/dev/null || true
  pg_stop
}
trap cleanup EXIT

measure() { # warm-up-seconds url [lua] -> "rps p50 p99 non2xx"
  local out; out="$(mktemp)"
  wrk -t2 -c32 -d"${1}s" ${3:+-s "$3"} "$2" >/dev/null
  wrk -t2 -c32 -d"${duration}s" --latency ${3:+-s "$3"} "$2" > "$out"
  cat "$out" >&2
  wrk_summary "$out"; rm -f "$out"
}

start_fake_provider "$fake_port"
if [ "${BENCH_PEERS:-on}" != off ]; then
  bench_build "$bench_root/bench/tools/BareKestrel" -c Release -nologo -v quiet >/dev/null
  dotnet "$bench_root/bench/tools/BareKestrel/bin/Release/net10.0/BareKestrel.dll" --urls "http://127.0.0.1:$bare_port" >/dev/null 2>&1 &
  bare_pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$bare_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
fi

rows=()
rounds_line=()
for engine in $engines; do
  extra=(Nexus__AllowInsecureUpstreams=true "ALLOWED_RETURN_URLS=http://127.0.0.1:$port")
  if [ "$engine" = postgres ]; then start_pg; extra+=("DATABASE_URL=$pg_url"); fi
  start_nexus "$port" "${extra[@]}"
  bench_connect "$port" "$fake_port"
  lua="$(mktemp /tmp/nexus-bench-lua.XXXXXX)"
  printf 'wrk.headers["X-API-Key"] = "%s"\n' "$gateway_key" > "$lua"
  raw="$(mktemp)" # "path round rps p50 p99 non2xx" per measurement
  paths=(token healthz); [ -n "$bare_pid" ] && paths+=(kestrel)
  for round in $(seq 1 "$rounds"); do
    # The first round warms every process past the JIT's tiering; later ones need only the usual short warm-up.
    warm="$([ "$round" = 1 ] && bench_jit_warmup "$duration" || bench_warmup "$duration")"
    order=("${paths[@]}"); [ $((round % 2)) = 0 ] && order=($(printf '%s\n' "${paths[@]}" | tac))
    for path in "${order[@]}"; do
      case "$path" in
        token) url="http://127.0.0.1:$port/v1/token/$connection_id"; script="$lua" ;;
        healthz) url="http://127.0.0.1:$port/healthz"; script="" ;;
        kestrel) url="http://127.0.0.1:$bare_port/healthz"; script="" ;;
      esac
      echo "== $engine, round $round: $path ($url)" >&2
      echo "$path $round $(measure "$warm" "$url" "$script")" >> "$raw"
    done
  done
  rm -f "$lua"
  col() { awk -v p="$1" -v c="$2" '$1 == p { print $(c) }' "$raw" | bench_median; }     # path, column: median over the rounds
  rps="$(col token 3)"; p50="$(col token 4)"; p99="$(col token 5)"; bad="$(awk '$1 == "token" { n += $6 } END { print n + 0 }' "$raw")"
  hrps="$(col healthz 3)"; hp99="$(col healthz 5)"
  ratio="$(awk -v r="$(bench_round_ratio token healthz "$raw")" 'BEGIN { printf "%.0f%%", 100 * r }')"
  krps="-"; kratio="-"
  if [ -n "$bare_pid" ]; then krps="$(col kestrel 3)"; kratio="$(awk -v r="$(bench_round_ratio token kestrel "$raw")" 'BEGIN { printf "%.2fx", r }')"; fi
  rounds_line+=("- $engine, reads/s per round: $(awk '$1 == "token" { printf "%s%s", sep, $3; sep = ", " }' "$raw"); bare Kestrel GET: $(awk '$1 == "kestrel" { printf "%s%s", sep, $3; sep = ", " }' "$raw")")
  rm -f "$raw"
  rows+=("| $engine | $rps | $p50 | $p99 | $bad | $hrps | $hp99 | $ratio | $krps | $kratio |")
  stop_nexus
  if [ "$engine" = postgres ]; then pg_stop; fi
done

result="$(dirname "${BASH_SOURCE[0]}")/results/token-read.md"
{
  echo "# Credential retrieval (GET /v1/token/{connection_id})"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine)"
  echo "- load: wrk -t2 -c32 -d${duration}s per path and round ($rounds rounds, the paths taking turns, the order reversed every other round; $(bench_jit_warmup "$duration") s of warm-up in the first round, past the JIT's tiering, $(bench_warmup "$duration") s after), X-API-Key of a workspace-bound gateway key, one active connection"
  echo "- baseline: the same load on GET /healthz, a constant JSON answer that touches neither cache nor database; and on the bare Kestrel GET /healthz of bench/tools/BareKestrel (the ceiling of issue #20: >= 0.75x on SQLite, >= 0.6x on PostgreSQL)"
  echo "- figures: the median over the rounds; the ratios: the median of each round's ratio; non-2xx: the sum"
  echo "- settings: defaults (ApiKeyCacheSeconds=5, ConnectionCacheSeconds=5, AuditTokenReadIntervalSeconds=60)"
  echo
  echo "| engine | reads/s | p50 (ms) | p99 (ms) | non-2xx | /healthz req/s | /healthz p99 (ms) | reads / healthz | bare Kestrel GET req/s | reads / Kestrel GET |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  printf '%s\n' "${rounds_line[@]}"
} > "$result"
echo
cat "$result"
