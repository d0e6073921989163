#!/usr/bin/env bash
# Client credentials token issuance (issue: foundation; issue #20). Target: >= 10,000 tokens/s with p99 < 10 ms on
# 2 cores, wrk with 32 connections for 15 s, client and server on this machine; and (issue #20) ES256 >= 0.9x the
# Kestrel ceiling. Beside Nexus, in the same run and right before it for each algorithm:
#   ceiling  bench/tools/BareKestrel: the same token signed with no client check, no storage, no middleware;
#   peer     node-oidc-provider 9.13.3 in memory, one process (bench/tools/oidc-provider-peer), JWT access tokens
#            (resource indicator urn:bench:es256 / urn:bench:rs256), client_secret_basic.
# ES256 and RS256: Nexus is restarted with Nexus__AccessTokenSigningAlgorithm=RS256 for the second.
#   bench/client-credentials.sh [seconds] [rounds]   rounds: 3 (default), the ceiling, the peer and Nexus taking turns
#   BENCH_PEERS=off   Nexus ES256 and /healthz only (as before issue #20: a quicker run of Nexus alone)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-15}"
rounds="${2:-3}"
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

declare -A res ratio_k ratio_p
# medians WHO ALG FILE: "rps p50 p99 non2xx cpu", each the median over the rounds (non-2xx: the sum).
medians() {
  local c out=""
  for c in 3 4 5; do out+="$(awk -v w="$1" -v c="$c" '$1 == w { print $(c) }' "$3" | bench_median) "; done
  out+="$(awk -v w="$1" '$1 == w { n += $6 } END { print n + 0 }' "$3") "
  out+="$(awk -v w="$1" '$1 == w { print $7 }' "$3" | bench_median)"
  echo "$out"
}
# round_ratio A B FILE: the median over the rounds of A's tokens/s ÷ B's in the same round.
round_ratio() { bench_round_ratio "$@" | awk '{ if ($1 == "-") print "—"; else printf "%.2f", $1 }'; }
# one ALG: warm a fresh Nexus (and, for ES256, the ceiling and the peer) past the JIT's tiering, then ROUNDS rounds in
# which the ceiling, the peer and Nexus take turns (the order reversed every other round); each figure is the median
# over the rounds, each ratio the median of the rounds' own, so a drift of the shared machine reaches all three alike.
one() {
  local alg="$1" bare_path=/oauth2/token peer_lua bare_lua raw round who order
  [ "$alg" = RS256 ] && bare_path=/rs256/oauth2/token
  start_nexus "$port" "Nexus__AccessTokenSigningAlgorithm=$alg"
  nexus_client
  wrk -t2 -c32 -d"$(bench_jit_warmup "$duration")s" -s "$lua" "http://127.0.0.1:$port/oauth2/token" >/dev/null
  order=(nexus)
  if [ "$peers" != off ]; then
    bare_lua="$(bench_token_lua "$(printf 'bench:x' | base64 -w0)" "grant_type=client_credentials&scope=read")"; luas+=("$bare_lua")
    if [ "$alg" = ES256 ]; then # the ceiling's and the peer's first requests: past their JITs too, like Nexus's
      wrk -t2 -c32 -d"$(bench_jit_warmup "$duration")s" -s "$bare_lua" "http://127.0.0.1:$bare_port$bare_path" >/dev/null
      peer_lua="$(bench_token_lua "$peer_basic" "grant_type=client_credentials&scope=read")"; luas+=("$peer_lua")
      wrk -t2 -c32 -d"$(bench_jit_warmup "$duration")s" -s "$peer_lua" "http://127.0.0.1:$peer_port/token" >/dev/null
    fi
    peer_lua="$(bench_token_lua "$peer_basic" "grant_type=client_credentials&scope=read&resource=urn:bench:${alg,,}")"; luas+=("$peer_lua")
    order=(bare peer nexus)
  fi
  raw="$(mktemp)" # "who round rps p50 p99 non2xx cpu" per measurement
  for round in $(seq 1 "$rounds"); do
    [ $((round % 2)) = 0 ] && order=($(printf '%s\n' "${order[@]}" | tac))
    for who in "${order[@]}"; do
      echo "== $alg, round $round: $who" >&2
      case "$who" in
        bare) echo "bare $round $(bench_measure "$bare_pid" "$duration" "http://127.0.0.1:$bare_port$bare_path" "$bare_lua")" >> "$raw" ;;
        peer) echo "peer $round $(bench_measure "$peer_pid" "$duration" "http://127.0.0.1:$peer_port/token" "$peer_lua")" >> "$raw" ;;
        nexus) echo "nexus $round $(bench_measure "$nexus_pid" "$duration" "http://127.0.0.1:$port/oauth2/token" "$lua")" >> "$raw" ;;
      esac
      echo "   $(tail -1 "$raw")" >&2
    done
  done
  for who in nexus bare peer; do res[${who}_$alg]="$(medians "$who" "$alg" "$raw")"; done
  ratio_k[$alg]="$(round_ratio nexus bare "$raw")"; ratio_p[$alg]="$(round_ratio nexus peer "$raw")"
  res[rounds_$alg]="$(awk '$1 == "nexus" { printf "%s%s", s, $3; s = ", " }' "$raw")"
  [ "$peers" != off ] && res[rounds_$alg]+="; ceiling $(awk '$1 == "bare" { printf "%s%s", s, $3; s = ", " }' "$raw")"
  rm -f "$raw"
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
  echo "- load: wrk -t2 -c32 -d${duration}s after a $(bench_jit_warmup "$duration") s warm-up of each fresh Nexus and $(bench_warmup "$duration") s before each measurement, POST /oauth2/token with HTTP Basic, SQLite; $rounds rounds in which the ceiling, the peer and Nexus take turns (the order reversed every other round)"
  echo "- figures: the median over the rounds (non-2xx: the sum); ratios: the median of each round's own ratio"
  echo "- Nexus's tokens/s per round, ES256: ${res[rounds_ES256]}$([ "$peers" != off ] && echo "; RS256: ${res[rounds_RS256]}")"
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
      echo "| client credentials, $alg JWT | ${ratio_p[$alg]} | ${ratio_k[$alg]} |"
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
    rk="${ratio_k[$alg]}"; rp="${ratio_p[$alg]}"
    if [ "$alg" = ES256 ]; then
      s="$(at_least "$rk" 0.9)"
      summary_row "client credentials, ES256 JWT vs ceiling and peer (issue #20)" "$r" "$a" "$b" "$c" "$rk" "$rp" "≥ 0.9× the Kestrel ceiling" "$s" \
        "$([ "$s" = met ] || echo "Nexus authenticates the client (HMAC of the secret, failed-authentication limiter), checks the client's state and scopes and records nothing the ceiling skips; ceiling ${res[bare_$alg]%% *} tokens/s, Nexus $r")"
    else
      summary_row "client credentials, RS256 JWT vs ceiling and peer (issue #20)" "$r" "$a" "$b" "$c" "$rk" "$rp" "— (no target)" "—" ""
    fi
  done
fi
