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
#   bench/token-read.sh [seconds] [engines]      engines: "sqlite postgres" (default), "sqlite" or "postgres"
#   BENCH_PEERS=off   no bare Kestrel ceiling (bench/telemetry.sh compares Nexus with itself)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-15}"
engines="${2:-sqlite postgres}"
need wrk curl
build_nexus
bench_build "$bench_root/bench/tools/FakeProvider" -c Release -nologo -v quiet >/dev/null
fake_dll="$bench_root/bench/tools/FakeProvider/bin/Release/net10.0/FakeProvider.dll"
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

measure() { # url [lua] -> "rps p50 p99 non2xx"
  local out; out="$(mktemp)"
  wrk -t2 -c32 -d"$(bench_jit_warmup "$duration")s" ${2:+-s "$2"} "$1" >/dev/null
  wrk -t2 -c32 -d"${duration}s" --latency ${2:+-s "$2"} "$1" > "$out"
  cat "$out" >&2
  wrk_summary "$out"; rm -f "$out"
}

"$(command -v dotnet)" "$fake_dll" --urls "http://127.0.0.1:$fake_port" >/dev/null 2>&1 &
fake_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$fake_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
if [ "${BENCH_PEERS:-on}" != off ]; then
  bench_build "$bench_root/bench/tools/BareKestrel" -c Release -nologo -v quiet >/dev/null
  dotnet "$bench_root/bench/tools/BareKestrel/bin/Release/net10.0/BareKestrel.dll" --urls "http://127.0.0.1:$bare_port" >/dev/null 2>&1 &
  bare_pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$bare_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
fi

rows=()
for engine in $engines; do
  extra=(Nexus__AllowInsecureUpstreams=true "ALLOWED_RETURN_URLS=http://127.0.0.1:$port")
  if [ "$engine" = postgres ]; then start_pg; extra+=("DATABASE_URL=$pg_url"); fi
  start_nexus "$port" "${extra[@]}"
  bench_connect "$port" "$fake_port"
  lua="$(mktemp /tmp/nexus-bench-lua.XXXXXX)"
  printf 'wrk.headers["X-API-Key"] = "%s"\n' "$gateway_key" > "$lua"
  echo "== $engine: GET /v1/token/$connection_id" >&2
  read -r rps p50 p99 bad <<<"$(measure "http://127.0.0.1:$port/v1/token/$connection_id" "$lua")"
  echo "== $engine: GET /healthz" >&2
  read -r hrps hp50 hp99 hbad <<<"$(measure "http://127.0.0.1:$port/healthz")"
  krps="-"
  if [ -n "$bare_pid" ]; then
    echo "== $engine: bare Kestrel GET /healthz (the ceiling)" >&2
    read -r krps kp50 kp99 kbad <<<"$(measure "http://127.0.0.1:$bare_port/healthz")"
  fi
  rm -f "$lua"
  ratio="$(awk -v a="$rps" -v b="$hrps" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
  kratio="$(awk -v a="$rps" -v b="$krps" 'BEGIN { if (b + 0 > 0) printf "%.2fx", a / b; else printf "-" }')"
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
  echo "- load: wrk -t2 -c32 -d${duration}s (after $(bench_jit_warmup "$duration") s of warm-up, past the JIT's tiering), X-API-Key of a workspace-bound gateway key, one active connection"
  echo "- baseline: the same load on GET /healthz, a constant JSON answer that touches neither cache nor database; and on the bare Kestrel GET /healthz of bench/tools/BareKestrel (the ceiling of issue #20: >= 0.75x on SQLite, >= 0.6x on PostgreSQL), right after"
  echo "- settings: defaults (ApiKeyCacheSeconds=5, ConnectionCacheSeconds=5, AuditTokenReadIntervalSeconds=60)"
  echo
  echo "| engine | reads/s | p50 (ms) | p99 (ms) | non-2xx | /healthz req/s | /healthz p99 (ms) | reads / healthz | bare Kestrel GET req/s | reads / Kestrel GET |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} > "$result"
echo
cat "$result"
