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

measure() { # url [lua] -> "rps p50 p99 non2xx"
  local out; out="$(mktemp)"
  wrk -t2 -c32 -d3s ${2:+-s "$2"} "$1" >/dev/null
  wrk -t2 -c32 -d"${duration}s" --latency ${2:+-s "$2"} "$1" > "$out"
  cat "$out" >&2
  wrk_summary "$out"; rm -f "$out"
}
lua="$(mktemp /tmp/nexus-bench-lua.XXXXXX)"
printf 'wrk.headers["X-API-Key"] = "%s"\n' "$key" > "$lua"
echo "== direct: GET /api/items" >&2
read -r drps dp50 dp99 dbad <<<"$(measure "http://127.0.0.1:$fake_port/api/items")"
echo "== through the Bridge: GET /v1/bridge/$connection_id/items" >&2
read -r brps bp50 bp99 bbad <<<"$(measure "$base/v1/bridge/$connection_id/items" "$lua")"
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
  echo "| path | requests/s | p50 (ms) | p99 (ms) | non-2xx |"
  echo "|---|---:|---:|---:|---:|"
  echo "| direct to the upstream | $drps | $dp50 | $dp99 | $dbad |"
  echo "| through the Bridge | $brps | $bp50 | $bp99 | $bbad |"
  echo
  echo "Throughput ratio (Bridge / direct): **$ratio**; p50 overhead: **$overhead ms**."
} > "$result"
echo; cat "$result"
