#!/usr/bin/env bash
# Client credentials token issuance (issue: foundation; issue #20). Target: >= 10,000 tokens/s with p99 < 10 ms on
# 2 cores, wrk with 32 connections for 15 s, client and server on this machine; and (issue #20) ES256 >= 0.9x the
# Kestrel ceiling. Beside Nexus, in the same run and right before it for each algorithm:
#   ceiling  bench/tools/BareKestrel: the same token signed with no client check, no storage, no middleware;
#   peer     node-oidc-provider 9.13.3 in memory, one process (bench/tools/oidc-provider-peer), JWT access tokens
#            (resource indicator urn:bench:es256 / urn:bench:rs256), client_secret_basic.
# ES256 and RS256: Nexus is restarted with Nexus__AccessTokenSigningAlgorithm=RS256 for the second.
#   bench/client-credentials.sh [seconds]
#   BENCH_PEERS=off   Nexus ES256 and /healthz only (as before issue #20; bench/telemetry.sh uses it)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-15}"
peers="${BENCH_PEERS:-on}"
need wrk curl
build_nexus
port=18090
bare_port=18098
peer_port=18096
bare_pid=""
cleanup() {
  stop_nexus; stop_peer
  [ -n "$bare_pid" ] && kill "$bare_pid" 2>/dev/null && wait "$bare_pid" 2>/dev/null || true
}
trap cleanup EXIT

luas=()

if [ "$peers" != off ]; then
  bench_build "$bench_root/bench/tools/BareKestrel" -c Release -nologo -v quiet >/dev/null
  dotnet "$bench_root/bench/tools/BareKestrel/bin/Release/net10.0/BareKestrel.dll" --urls "http://127.0.0.1:$bare_port" >/dev/null 2>&1 &
  bare_pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$bare_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  start_peer "$peer_port"
  peer_basic="$(printf 'bench:%s' "$peer_secret" | base64 -w0)"
fi

# nexus_client: creates a client on the running Nexus and sets basic and lua.
nexus_client() {
  basic="$(bench_client "$port")"
  lua="$(bench_token_lua "$basic" "grant_type=client_credentials&scope=read")"; luas+=("$lua")
}

declare -A res
# one ALG: warm a fresh Nexus past the JIT's tiering, then ceiling, peer and Nexus back to back.
one() {
  local alg="$1" bare_path=/oauth2/token peer_lua bare_lua
  [ "$alg" = RS256 ] && bare_path=/rs256/oauth2/token
  start_nexus "$port" "Nexus__AccessTokenSigningAlgorithm=$alg"
  nexus_client
  wrk -t2 -c32 -d"$(bench_jit_warmup "$duration")s" -s "$lua" "http://127.0.0.1:$port/oauth2/token" >/dev/null
  if [ "$peers" != off ]; then
    bare_lua="$(bench_token_lua "$(printf 'bench:x' | base64 -w0)" "grant_type=client_credentials&scope=read")"; luas+=("$bare_lua")
    if [ "$alg" = ES256 ]; then # the ceiling's and the peer's first requests: past their JITs too, like Nexus's
      wrk -t2 -c32 -d"$(bench_jit_warmup "$duration")s" -s "$bare_lua" "http://127.0.0.1:$bare_port$bare_path" >/dev/null
      peer_lua="$(bench_token_lua "$peer_basic" "grant_type=client_credentials&scope=read")"; luas+=("$peer_lua")
      wrk -t2 -c32 -d"$(bench_jit_warmup "$duration")s" -s "$peer_lua" "http://127.0.0.1:$peer_port/token" >/dev/null
    fi
    echo "== $alg ceiling" >&2
    res[bare_$alg]="$(bench_measure "$bare_pid" "$duration" "http://127.0.0.1:$bare_port$bare_path" "$bare_lua")"
    echo "   ${res[bare_$alg]}" >&2
    peer_lua="$(bench_token_lua "$peer_basic" "grant_type=client_credentials&scope=read&resource=urn:bench:${alg,,}")"; luas+=("$peer_lua")
    echo "== $alg peer" >&2
    res[peer_$alg]="$(bench_measure "$peer_pid" "$duration" "http://127.0.0.1:$peer_port/token" "$peer_lua")"
    echo "   ${res[peer_$alg]}" >&2
  fi
  echo "== $alg Nexus" >&2
  res[nexus_$alg]="$(bench_measure "$nexus_pid" "$duration" "http://127.0.0.1:$port/oauth2/token" "$lua")"
  echo "   ${res[nexus_$alg]}" >&2
  if [ "$alg" = ES256 ]; then
    # For scale, the same load on GET /healthz, a constant JSON answer: this machine's speed varies between sessions.
    echo "== /healthz" >&2
    res[healthz]="$(bench_measure "$nexus_pid" "$duration" "http://127.0.0.1:$port/healthz")"
  fi
  stop_nexus
}
one ES256
[ "$peers" != off ] && one RS256
rm -f "${luas[@]}"

read -r rps p50 p99 bad cpu <<<"${res[nexus_ES256]}"
read -r hrps _ hp99 _ _ <<<"${res[healthz]}"
result="$(dirname "${BASH_SOURCE[0]}")/results/client-credentials.md"
{
  echo "# Client credentials token issuance"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- load: wrk -t2 -c32 -d${duration}s after a $(bench_jit_warmup "$duration") s warm-up of each fresh Nexus and $(bench_warmup "$duration") s before each measurement, POST /oauth2/token with HTTP Basic, SQLite"
  echo "- baseline: the same load on GET /healthz, a constant JSON answer"
  echo
  echo "| tokens/s | p50 (ms) | p99 (ms) | non-2xx | /healthz req/s | /healthz p99 (ms) | tokens / healthz |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  echo "| $rps | $p50 | $p99 | $bad | $hrps | $hp99 | $(ratio "$rps" "$hrps") |"
  if [ "$peers" != off ]; then
    echo
    echo "## Beside the ceiling and node-oidc-provider (issue #20)"
    echo
    echo "- ceiling: bench/tools/BareKestrel signs the same token (no client check, storage or middleware)"
    echo "- peer: node-oidc-provider 9.13.3, in memory, one process (bench/tools/oidc-provider-peer), JWT access tokens through RFC 8707 resource indicators"
    echo "- server CPU: the server process's CPU time during the measurement ÷ requests answered"
    echo
    echo "| scenario | server | tokens/s | p50 (ms) | p99 (ms) | non-2xx | server CPU µs/request |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for alg in ES256 RS256; do
      for who in nexus bare peer; do
        read -r r a b n c <<<"${res[${who}_$alg]}"
        echo "| client credentials, $alg JWT | $who | $r | $a | $b | $n | $c |" | sed 's/| bare |/| bare Kestrel |/; s/| peer |/| node-oidc-provider |/; s/| nexus |/| Nexus |/'
      done
    done
    echo
    echo "| scenario | Nexus ÷ node-oidc-provider | Nexus ÷ Kestrel |"
    echo "|---|---:|---:|"
    for alg in ES256 RS256; do
      echo "| client credentials, $alg JWT | $(ratio "${res[nexus_$alg]%% *}" "${res[peer_$alg]%% *}") | $(ratio "${res[nexus_$alg]%% *}" "${res[bare_$alg]%% *}") |"
    done
  fi
} > "$result"
echo
cat "$result"

# For bench/run-all.sh (docs/benchmarks.md).
status="$(awk -v r="$rps" -v p="$p99" 'BEGIN { print (r >= 10000 && p < 10) ? "met" : "missed" }')"
summary_row "client credentials, ES256 JWT (issue: foundation)" "$rps" "$p50" "$p99" "$cpu" "" "" "≥ 10,000 tokens/s, p99 < 10 ms" "$status" \
  "$([ "$status" = met ] || echo "measured $rps tokens/s, p99 $p99 ms on a machine with load average $(cut -d' ' -f1 /proc/loadavg); /healthz $hrps req/s in the same run")"
if [ "$peers" != off ]; then
  for alg in ES256 RS256; do
    read -r r a b _ c <<<"${res[nexus_$alg]}"
    rk="$(ratio "$r" "${res[bare_$alg]%% *}")"; rp="$(ratio "$r" "${res[peer_$alg]%% *}")"
    if [ "$alg" = ES256 ]; then
      s="$(at_least "$rk" 0.9)"
      summary_row "client credentials, ES256 JWT vs ceiling and peer (issue #20)" "$r" "$a" "$b" "$c" "$rk" "$rp" "≥ 0.9× the Kestrel ceiling" "$s" \
        "$([ "$s" = met ] || echo "Nexus authenticates the client (HMAC of the secret, failed-authentication limiter), checks the client's state and scopes and records nothing the ceiling skips; ceiling ${res[bare_$alg]%% *} tokens/s, Nexus $r")"
    else
      summary_row "client credentials, RS256 JWT vs ceiling and peer (issue #20)" "$r" "$a" "$b" "$c" "$rk" "$rp" "— (no target)" "—" ""
    fi
  done
fi
