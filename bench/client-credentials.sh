#!/usr/bin/env bash
# Client credentials token issuance (issue: foundation). Target: >= 10,000 tokens/s with p99 < 10 ms on 2 cores,
# wrk with 32 connections for 15 s, client and server on this machine.
#   bench/client-credentials.sh [seconds]
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-15}"
need wrk curl
build_nexus
port=18090
trap stop_nexus EXIT
start_nexus "$port"

created="$(curl -fs -X POST "http://127.0.0.1:$port/v1/admin/clients" -H "X-API-Key: $nexus_api_key" \
  -H 'Content-Type: application/json' -d '{"name":"bench","scopes":["read","write"]}')"
client_id="$(sed -E 's/.*"client_id":"([^"]+)".*/\1/' <<<"$created")"
client_secret="$(sed -E 's/.*"client_secret":"([^"]+)".*/\1/' <<<"$created")"
basic="$(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)"

lua="$(mktemp /tmp/nexus-bench-lua.XXXXXX)"
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
LUA

# Warm up past the JIT's tiering (after 3 s Nexus is still compiling), then measure. For scale, the same load on
# GET /healthz, a constant JSON answer: this machine's speed varies between sessions, the ratio much less.
wrk -t2 -c32 -d20s -s "$lua" "http://127.0.0.1:$port/oauth2/token" >/dev/null
out="$(mktemp)"
wrk -t2 -c32 -d"${duration}s" --latency -s "$lua" "http://127.0.0.1:$port/oauth2/token" | tee "$out"
read -r rps p50 p99 bad <<<"$(wrk_summary "$out")"
wrk -t2 -c32 -d3s "http://127.0.0.1:$port/healthz" >/dev/null
wrk -t2 -c32 -d"${duration}s" --latency "http://127.0.0.1:$port/healthz" > "$out"
read -r hrps _ hp99 _ <<<"$(wrk_summary "$out")"
rm -f "$lua" "$out"

result="$(dirname "${BASH_SOURCE[0]}")/results/client-credentials.md"
{
  echo "# Client credentials token issuance"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine)"
  echo "- load: wrk -t2 -c32 -d${duration}s after a 20 s warm-up, POST /oauth2/token with HTTP Basic, ES256 JWT, SQLite"
  echo "- baseline: the same load on GET /healthz, a constant JSON answer"
  echo
  echo "| tokens/s | p50 (ms) | p99 (ms) | non-2xx | /healthz req/s | /healthz p99 (ms) | tokens / healthz |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  echo "| $rps | $p50 | $p99 | $bad | $hrps | $hp99 | $(awk -v a="$rps" -v b="$hrps" 'BEGIN { printf "%.2f", a / b }') |"
} > "$result"
echo
cat "$result"
