#!/usr/bin/env bash
# Bridge overhead (issue: non-OAuth credentials and the Bridge). Target: p50 overhead under 1 ms and throughput at
# least 0.6x calling the upstream directly, wrk -c32 in one run, everything on this machine (SQLite).
#   bench/bridge.sh [seconds]
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-15}"
need wrk curl
build_nexus
dotnet build "$bench_root/bench/tools/FakeProvider" -c Release -nologo -v quiet >/dev/null
fake_dll="$bench_root/bench/tools/FakeProvider/bin/Release/net10.0/FakeProvider.dll"
port=18090
fake_port=18092
fake_pid=""
cleanup() { stop_nexus; [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null || true; }
trap cleanup EXIT

"$(command -v dotnet)" "$fake_dll" --urls "http://127.0.0.1:$fake_port" >/dev/null 2>&1 &
fake_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$fake_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
start_nexus "$port" Nexus__AllowInsecureUpstreams=true

base="http://127.0.0.1:$port"
admin=(-H "X-API-Key: $nexus_api_key" -H 'Content-Type: application/json')
curl -fs -X POST "$base/v1/providers" "${admin[@]}" -d "{\"name\":\"api\",\"auth_mode\":\"api_key\",\"api_base_url\":\"http://127.0.0.1:$fake_port/api\",
  \"api_key\":{\"in\":\"header\",\"name\":\"Authorization\",\"prefix\":\"Bearer \"}}" >/dev/null
key="$(curl -fs -X POST "$base/v1/admin/api-keys" "${admin[@]}" -d '{"name":"agent","workspaces":["ws"],"can_read_credentials":false}' | sed -E 's/.*"api_key":"([^"]+)".*/\1/')"
connection_id="$(curl -fs -X POST "$base/v1/request-connection" "${admin[@]}" -d "{\"workspace_id\":\"ws\",\"provider_name\":\"api\",\"return_url\":\"$base/\"}" | sed -E 's/.*"connection_id":"([^"]+)".*/\1/')"
curl -fs -X POST "$base/v1/connections/$connection_id/credentials" "${admin[@]}" -d '{"api_key":"sk-bench"}' >/dev/null

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; } # user + system, in clock ticks
measure() { # url [lua] -> "rps p50 p99 non2xx cpu_us_per_request(wrk nexus upstream)"
  local out times; out="$(mktemp)"; times="$(mktemp)"
  wrk -t2 -c32 -d3s ${2:+-s "$2"} "$1" >/dev/null
  local n0 f0; n0="$(cpu_ticks "$nexus_pid")"; f0="$(cpu_ticks "$fake_pid")"
  local TIMEFORMAT='%U %S'
  { time wrk -t2 -c32 -d"${duration}s" --latency ${2:+-s "$2"} "$1" > "$out"; } 2> "$times"
  local n1 f1; n1="$(cpu_ticks "$nexus_pid")"; f1="$(cpu_ticks "$fake_pid")"
  cat "$out" >&2
  local summary requests; summary="$(wrk_summary "$out")"
  requests="$(awk '/requests in/ { print $1 }' "$out")"
  # CPU time each process spent per request: on a machine whose cores all three share, this says where the time
  # goes, which the throughput ratio alone cannot.
  echo "$summary $(awk -v r="$requests" -v t="$(getconf CLK_TCK)" -v n="$((n1 - n0))" -v f="$((f1 - f0))" -v w="$(cat "$times")" \
    'BEGIN { split(w, a, " "); printf "%.1f %.1f %.1f", (a[1] + a[2]) * 1e6 / r, n * 1e6 / t / r, f * 1e6 / t / r }')"
  rm -f "$out" "$times"
}
lua="$(mktemp /tmp/nexus-bench-lua.XXXXXX)"
printf 'wrk.headers["X-API-Key"] = "%s"\n' "$key" > "$lua"
echo "== direct: GET /api/items" >&2
read -r drps dp50 dp99 dbad dcw dcn dcf <<<"$(measure "http://127.0.0.1:$fake_port/api/items")"
echo "== through the Bridge: GET /v1/bridge/$connection_id/items" >&2
read -r brps bp50 bp99 bbad bcw bcn bcf <<<"$(measure "$base/v1/bridge/$connection_id/items" "$lua")"
rm -f "$lua"
ratio="$(awk -v a="$brps" -v b="$drps" 'BEGIN { printf "%.2f", a / b }')"
overhead="$(awk -v a="$bp50" -v b="$dp50" 'BEGIN { printf "%.2f", a - b }')"

result="$(dirname "${BASH_SOURCE[0]}")/results/bridge.md"
{
  echo "# Bridge overhead"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine)"
  echo "- load: wrk -t2 -c32 -d${duration}s; upstream: bench/tools/FakeProvider /api/* (small JSON); Bridge: api_key credential injected, bridge-only API key, SQLite"
  echo
  echo "| path | requests/s | p50 (ms) | p99 (ms) | non-2xx | CPU µs/request: wrk | Nexus | upstream |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  echo "| direct to the upstream | $drps | $dp50 | $dp99 | $dbad | $dcw | - | $dcf |"
  echo "| through the Bridge | $brps | $bp50 | $bp99 | $bbad | $bcw | $bcn | $bcf |"
  echo
  echo "Throughput ratio (Bridge / direct): **$ratio**; p50 overhead: **$overhead ms**."
} > "$result"
echo; cat "$result"
