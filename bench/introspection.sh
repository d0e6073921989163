#!/usr/bin/env bash
# The fixed cost of a request and introspection (issue #20), each beside its ceiling in the same run: a bare Kestrel
# minimal API (bench/tools/BareKestrel) with the same endpoints and none of Nexus's middleware, storage or checks.
# Reported as ratios (Nexus ÷ ceiling), which hold across machines and across the noise of a shared machine.
#   bench/introspection.sh [seconds] [engine]     engine: sqlite (default) or postgres
#   NEXUS_DLL=/path/to/Nexus.Server.dll bench/introspection.sh   measures another build (e.g. main, for before/after)
#   RESULT=name writes bench/results/name.md instead of introspection.md
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-15}"
engine="${2:-sqlite}"
need wrk curl
if [ -n "${NEXUS_DLL:-}" ]; then nexus_dll="$NEXUS_DLL"; else build_nexus; fi
dotnet build "$bench_root/bench/tools/BareKestrel" -c Release -nologo -v quiet >/dev/null
bare_dll="$bench_root/bench/tools/BareKestrel/bin/Release/net10.0/BareKestrel.dll"
port="${PORT:-18190}"
bare_port=$((port + 2))

bare_pid=""
cleanup() {
  stop_nexus
  [ -n "$bare_pid" ] && kill "$bare_pid" 2>/dev/null && wait "$bare_pid" 2>/dev/null || true
  pg_stop
}
trap cleanup EXIT

field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }

measure() { # url [lua] -> "rps p50 p99 non2xx"
  local out; out="$(mktemp)"
  wrk -t2 -c32 -d5s ${2:+-s "$2"} "$1" >/dev/null
  wrk -t2 -c32 -d"${duration}s" --latency ${2:+-s "$2"} "$1" > "$out"
  wrk_summary "$out"; rm -f "$out"
}

introspect_lua() { # token basic -> lua file
  local lua; lua="$(mktemp /tmp/nexus-bench-lua.XXXXXX)"
  cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = "token=$1"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $2"
LUA
  echo "$lua"
}

declare -A rps p99
run() { # name url [lua]
  echo "== $1" >&2
  read -r r _ p bad <<<"$(measure "$2" "${3:-}")"
  [ "$bad" = 0 ] || echo "   $bad non-2xx answers" >&2
  rps[$1]=$r; p99[$1]=$p
  echo "   $r req/s, p99 $p ms" >&2
}

# Both servers run side by side; each endpoint is measured on the ceiling and right after on Nexus, so that the
# two figures of a ratio see the same load from whatever else runs on the machine.
dotnet "$bare_dll" --urls "http://127.0.0.1:$bare_port" >/dev/null 2>&1 &
bare_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$bare_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
bare_token="$(curl -fs -X POST "http://127.0.0.1:$bare_port/oauth2/token" | field access_token)"
bare_lua="$(introspect_lua "$bare_token" "$(printf 'bench:x' | base64 -w0)")"

extra=()
if [ "$engine" = postgres ]; then start_pg; extra+=("DATABASE_URL=$pg_url"); fi
start_nexus "$port" "${extra[@]}"
created="$(curl -fs -X POST "http://127.0.0.1:$port/v1/admin/clients" -H "X-API-Key: $nexus_api_key" \
  -H 'Content-Type: application/json' -d '{"name":"bench","scopes":["read"]}')"
client_id="$(field client_id <<<"$created")"; client_secret="$(field client_secret <<<"$created")"
basic="$(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)"
token="$(curl -fs -X POST "http://127.0.0.1:$port/oauth2/token" -H "Authorization: Basic $basic" -d 'grant_type=client_credentials&scope=read' | field access_token)"
lua="$(introspect_lua "$token" "$basic")"
active="$(curl -fs -X POST "http://127.0.0.1:$port/oauth2/introspect" -H "Authorization: Basic $basic" -d "token=$token")"
case "$active" in *'"active":true'*) ;; *) echo "introspection did not answer active: $active" >&2; exit 1 ;; esac

run bare_healthz "http://127.0.0.1:$bare_port/healthz"
run nexus_healthz "http://127.0.0.1:$port/healthz"
run bare_discovery "http://127.0.0.1:$bare_port/.well-known/openid-configuration"
run nexus_discovery "http://127.0.0.1:$port/.well-known/openid-configuration"
run nexus_jwks "http://127.0.0.1:$port/oauth2/jwks"
run bare_introspect "http://127.0.0.1:$bare_port/oauth2/introspect" "$bare_lua"
run nexus_introspect "http://127.0.0.1:$port/oauth2/introspect" "$lua"
rm -f "$lua" "$bare_lua"
stop_nexus

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
result="$(dirname "${BASH_SOURCE[0]}")/results/${RESULT:-introspection}.md"
{
  echo "# Introspection and the fixed cost of a request, beside a bare Kestrel ceiling"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- build: ${NEXUS_DLL:-this working tree at $(git -C "$bench_root" rev-parse --short HEAD)}; database: $engine"
  echo "- load: wrk -t2 -c32 -d${duration}s after 5 s of warm-up per endpoint; client and server share the machine; ceiling and Nexus measured back to back per endpoint, both running"
  echo "- ceiling: bench/tools/BareKestrel, the same minimal-API endpoints without Nexus's middleware, client authentication, revocation or storage"
  echo
  echo "| endpoint | Nexus req/s | Nexus p99 (ms) | ceiling req/s | ceiling p99 (ms) | Nexus ÷ ceiling |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| GET /healthz | ${rps[nexus_healthz]} | ${p99[nexus_healthz]} | ${rps[bare_healthz]} | ${p99[bare_healthz]} | $(ratio "${rps[nexus_healthz]}" "${rps[bare_healthz]}") |"
  echo "| GET /.well-known/openid-configuration | ${rps[nexus_discovery]} | ${p99[nexus_discovery]} | ${rps[bare_discovery]} | ${p99[bare_discovery]} | $(ratio "${rps[nexus_discovery]}" "${rps[bare_discovery]}") |"
  echo "| GET /oauth2/jwks (ceiling: its discovery) | ${rps[nexus_jwks]} | ${p99[nexus_jwks]} | ${rps[bare_discovery]} | ${p99[bare_discovery]} | $(ratio "${rps[nexus_jwks]}" "${rps[bare_discovery]}") |"
  echo "| POST /oauth2/introspect (active ES256 token) | ${rps[nexus_introspect]} | ${p99[nexus_introspect]} | ${rps[bare_introspect]} | ${p99[bare_introspect]} | $(ratio "${rps[nexus_introspect]}" "${rps[bare_introspect]}") |"
} > "$result"
echo
cat "$result"
