#!/usr/bin/env bash
# The fixed cost of a request and introspection (issue #20), each beside its ceiling in the same run: a bare Kestrel
# minimal API (bench/tools/BareKestrel) with the same endpoints and none of Nexus's middleware, storage or checks.
# Reported as ratios (Nexus ÷ ceiling), which hold across machines and across the noise of a shared machine.
# Beside them the peer: node-oidc-provider 9.13.3 in memory, one process (bench/tools/oidc-provider-peer). Its JWT
# access tokens are not stored and so cannot be introspected; its introspection is measured on its opaque access
# token (resource urn:bench:opaque), looked up in its in-memory store, with client_secret_basic as for Nexus.
#   bench/introspection.sh [seconds] [engine]     engine: sqlite (default) or postgres
#   NEXUS_DLL=/path/to/Nexus.Server.dll bench/introspection.sh   measures another build (e.g. main, for before/after)
#   RESULT=name writes bench/results/name.md instead of introspection.md
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-15}"
engine="${2:-sqlite}"
need wrk curl
if [ -n "${NEXUS_DLL:-}" ]; then nexus_dll="$NEXUS_DLL"; else build_nexus; fi
bench_build "$bench_root/bench/tools/BareKestrel" -c Release -nologo -v quiet >/dev/null
bare_dll="$bench_root/bench/tools/BareKestrel/bin/Release/net10.0/BareKestrel.dll"
port="${PORT:-18190}"
bare_port=$((port + 2))
peer_port=$((port + 6))

bare_pid=""
cleanup() {
  stop_nexus; stop_peer
  [ -n "$bare_pid" ] && kill "$bare_pid" 2>/dev/null && wait "$bare_pid" 2>/dev/null || true
  pg_stop
}
trap cleanup EXIT

declare -A rps p50 p99 cpu
run() { # name pid url [lua]
  echo "== $1" >&2
  read -r r m p bad c <<<"$(bench_measure "$2" "$duration" "$3" "${4:-}")"
  [ "$bad" = 0 ] || echo "   $bad non-2xx answers" >&2
  rps[$1]=$r; p50[$1]=$m; p99[$1]=$p; cpu[$1]=$c
  echo "   $r req/s, p99 $p ms, $c µs CPU per request" >&2
}

# Both servers run side by side; each endpoint is measured on the ceiling and right after on Nexus, so that the
# two figures of a ratio see the same load from whatever else runs on the machine.
dotnet "$bare_dll" --urls "http://127.0.0.1:$bare_port" >/dev/null 2>&1 &
bare_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$bare_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
bare_token="$(curl -fs -X POST "http://127.0.0.1:$bare_port/oauth2/token" | json_field access_token)"
bare_lua="$(bench_token_lua "$(printf 'bench:x' | base64 -w0)" "token=$bare_token")"
start_peer "$peer_port"
peer_basic="$(printf 'bench:%s' "$peer_secret" | base64 -w0)"
peer_token="$(curl -fs -X POST "http://127.0.0.1:$peer_port/token" -H "Authorization: Basic $peer_basic" -d 'grant_type=client_credentials&scope=read&resource=urn:bench:opaque' | json_field access_token)"
peer_lua="$(bench_token_lua "$peer_basic" "token=$peer_token")"
case "$(curl -fs -X POST "http://127.0.0.1:$peer_port/token/introspection" -H "Authorization: Basic $peer_basic" -d "token=$peer_token")" in
  *'"active":true'*) ;; *) echo "the peer's introspection did not answer active" >&2; exit 1 ;; esac

extra=()
if [ "$engine" = postgres ]; then start_pg; extra+=("DATABASE_URL=$pg_url"); fi
start_nexus "$port" "${extra[@]}"
basic="$(bench_client "$port")"
token="$(curl -fs -X POST "http://127.0.0.1:$port/oauth2/token" -H "Authorization: Basic $basic" -d 'grant_type=client_credentials&scope=read' | json_field access_token)"
lua="$(bench_token_lua "$basic" "token=$token")"
active="$(curl -fs -X POST "http://127.0.0.1:$port/oauth2/introspect" -H "Authorization: Basic $basic" -d "token=$token")"
case "$active" in *'"active":true'*) ;; *) echo "introspection did not answer active: $active" >&2; exit 1 ;; esac

run bare_healthz "$bare_pid" "http://127.0.0.1:$bare_port/healthz"
run nexus_healthz "$nexus_pid" "http://127.0.0.1:$port/healthz"
run bare_discovery "$bare_pid" "http://127.0.0.1:$bare_port/.well-known/openid-configuration"
run peer_discovery "$peer_pid" "http://127.0.0.1:$peer_port/.well-known/openid-configuration"
run nexus_discovery "$nexus_pid" "http://127.0.0.1:$port/.well-known/openid-configuration"
run peer_jwks "$peer_pid" "http://127.0.0.1:$peer_port/jwks"
run nexus_jwks "$nexus_pid" "http://127.0.0.1:$port/oauth2/jwks"
run bare_introspect "$bare_pid" "http://127.0.0.1:$bare_port/oauth2/introspect" "$bare_lua"
run peer_introspect "$peer_pid" "http://127.0.0.1:$peer_port/token/introspection" "$peer_lua"
run nexus_introspect "$nexus_pid" "http://127.0.0.1:$port/oauth2/introspect" "$lua"
rm -f "$lua" "$bare_lua" "$peer_lua"
stop_nexus

result="$(dirname "${BASH_SOURCE[0]}")/results/${RESULT:-introspection}.md"
{
  echo "# Introspection and the fixed cost of a request, beside a bare Kestrel ceiling and node-oidc-provider"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- build: ${NEXUS_DLL:-this working tree at $(git -C "$bench_root" rev-parse --short HEAD)}; database: $engine"
  echo "- load: wrk -t2 -c32 -d${duration}s after $(bench_warmup "$duration") s of warm-up per endpoint; client and servers share the machine; ceiling, peer and Nexus measured back to back per endpoint, all running"
  echo "- ceiling: bench/tools/BareKestrel, the same minimal-API endpoints without Nexus's middleware, client authentication, revocation or storage (its JWKS ceiling: its discovery document)"
  echo "- peer: node-oidc-provider 9.13.3, in memory, one process (bench/tools/oidc-provider-peer); its introspection is of its opaque access token (its JWT access tokens are not stored, so not introspectable), client_secret_basic"
  echo "- server CPU: the server process's CPU time during the measurement ÷ requests answered"
  echo
  echo "| endpoint | Nexus req/s | Nexus p50 / p99 (ms) | Nexus CPU µs | ceiling req/s | ceiling p99 (ms) | peer req/s | peer p99 (ms) | peer CPU µs | Nexus ÷ peer | Nexus ÷ ceiling |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  row() { # label nexus bare peer
    echo "| $1 | ${rps[$2]} | ${p50[$2]} / ${p99[$2]} | ${cpu[$2]} | ${rps[$3]} | ${p99[$3]} | ${rps[$4]:-—} | ${p99[$4]:-—} | ${cpu[$4]:-—} | $(ratio "${rps[$2]}" "${rps[$4]:-0}") | $(ratio "${rps[$2]}" "${rps[$3]}") |"
  }
  row "GET /healthz" nexus_healthz bare_healthz none
  row "discovery document" nexus_discovery bare_discovery peer_discovery
  row "JWKS" nexus_jwks bare_discovery peer_jwks
  row "introspection of an active token" nexus_introspect bare_introspect peer_introspect
} > "$result"
echo
cat "$result"

# For bench/run-all.sh (docs/benchmarks.md): issue #20's targets.
load="load average $(cut -d' ' -f1 /proc/loadavg)"
for name in introspect healthz discovery jwks; do
  rk="$(ratio "${rps[nexus_$name]}" "${rps[bare_$name]:-${rps[bare_discovery]}}")"; rp="$(ratio "${rps[nexus_$name]}" "${rps[peer_$name]:-0}")"
  case "$name" in
    introspect) label="introspection of an active token ($engine)"; target="≥ 3× node-oidc-provider and ≥ 0.6× the Kestrel ceiling"
      s="$( [ "$(at_least "$rp" 3)" = met ] && [ "$(at_least "$rk" 0.6)" = met ] && echo met || echo missed)"
      why="Nexus authenticates the client (HMAC of the secret, failed-authentication limiter) and checks revocation in memory; the ceiling only checks the signature; $load" ;;
    healthz) label="GET /healthz, fixed cost of a request ($engine run)"; target="≥ 0.85× the bare Kestrel GET"; s="$(at_least "$rk" 0.85)"; rp=""
      why="what remains in front of every request: exception handler, status-code pages, input guard, the /mcp gate, antiforgery; $load" ;;
    discovery) label="discovery document ($engine run)"; target="≥ 3× node-oidc-provider"; s="$(at_least "$rp" 3)"; why="$load" ;;
    jwks) label="JWKS ($engine run)"; target="≥ 3× node-oidc-provider"; s="$(at_least "$rp" 3)"; why="$load" ;;
  esac
  [ "$s" = met ] && why=""
  summary_row "$label" "${rps[nexus_$name]}" "${p50[nexus_$name]}" "${p99[nexus_$name]}" "${cpu[nexus_$name]}" "$rk" "$rp" "$target" "$s" "$why"
done
