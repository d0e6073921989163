#!/usr/bin/env bash
# MCP server overhead (issue 14). Target: call_api's p50 overhead over a direct Bridge call at most 0.3 ms.
#
# One run, one Nexus (Production, SQLite), one upstream (bench/tools/FakeProvider, small JSON at /api/*). A person
# (created with the admin API) has an api_key connection to the upstream in their own workspace; an assistant
# registers itself (RFC 7591), the person signs in and consents over HTTP (curl with a cookie jar, PKCE S256,
# resource=BASE_URL/mcp), and the assistant's access token is used for every MCP request. Four paths:
#   GET /healthz                                   the machine's HTTP floor
#   GET /v1/bridge/{connection}/items               a direct Bridge call (X-API-Key)
#   POST /mcp tools/list                            the MCP endpoint with nothing behind it
#   POST /mcp tools/call call_api GET /items        the same upstream call through the MCP tool
# 1. Latency, one request at a time (bench/tools/McpLatency): ROUNDS rounds of one request to each path in turn, so
#    that every path meets the same background load on this shared machine; p50 per path and the p50 of the per-round
#    differences (call_api minus Bridge, tools/list minus /healthz).
# 2. Throughput, 8 connections with wrk, a few seconds per path.
#   bench/mcp.sh [seconds per wrk measurement] [rounds]
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-4}"
rounds="${2:-3000}"
need wrk curl
build_nexus
# NEXUS_BENCH_DLL: measure another build of Nexus (e.g. the main branch's) with this script.
nexus_dll="${NEXUS_BENCH_DLL:-$nexus_dll}"
bench_build "$bench_root/bench/tools/McpLatency" -c Release -nologo -v quiet >/dev/null
bench_build "$bench_root/bench/tools/BareMcp" -c Release -nologo -v quiet >/dev/null
bare_dll="$bench_root/bench/tools/BareMcp/bin/Release/net10.0/BareMcp.dll"
latency_dll="$bench_root/bench/tools/McpLatency/bin/Release/net10.0/McpLatency.dll"
port="${PORT:-18190}"
fake_port=$((port + 2))
fake_pid=""
bare_port=$((port + 4))
bare_pid=""
work="$(mktemp -d /tmp/nexus-bench-mcp.XXXXXX)"
cleanup() {
  stop_nexus
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
  [ -n "$bare_pid" ] && kill "$bare_pid" 2>/dev/null && wait "$bare_pid" 2>/dev/null
  rm -rf "$work"
  return 0
}
trap cleanup EXIT

load_start="$(cut -d' ' -f1 /proc/loadavg)"
start_fake_provider "$fake_port"
# The SDK's floor: the official SDK's stateless endpoint with a tool that does nothing (bench/tools/BareMcp).
"$(command -v dotnet)" "$bare_dll" --urls "http://127.0.0.1:$bare_port" >/dev/null 2>&1 &
bare_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$bare_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
start_nexus "$port" Nexus__AllowInsecureUpstreams=true

base="http://127.0.0.1:$port"
admin=(-H "X-API-Key: $nexus_api_key" -H 'Content-Type: application/json')
uri() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
form_fields() { # ACTION: the hidden inputs of the page's form posting to ACTION, one name=value a line
  python3 -c '
import html, re, sys
page = sys.stdin.read()
for action, body in re.findall(r"<form method=\"post\" action=\"([^\"]*)\"[^>]*>(.*?)</form>", page, re.S):
    if html.unescape(action).split("?")[0] == sys.argv[1]:
        for name, value in re.findall(r"<input type=\"hidden\" name=\"([^\"]*)\" value=\"([^\"]*)\">", body):
            print(html.unescape(name) + "=" + html.unescape(value))
        break' "$1"
}

# The upstream, and a person whose workspace holds a connection to it.
curl -fs -X POST "$base/v1/providers" "${admin[@]}" -d "{\"name\":\"api\",\"display_name\":\"Bench API\",\"auth_mode\":\"api_key\",\"api_base_url\":\"http://127.0.0.1:$fake_port/api\",
  \"api_key\":{\"in\":\"header\",\"name\":\"Authorization\",\"prefix\":\"Bearer \"}}" >/dev/null
email="bench-$(date +%s)@example.com"; password="bench-password-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
user_id="$(curl -fs -X POST "$base/v1/admin/users" "${admin[@]}" -d "{\"email\":\"$email\",\"password\":\"$password\"}" | json_field id)"
connection_id="$(curl -fs -X POST "$base/v1/request-connection" "${admin[@]}" -d "{\"workspace_id\":\"$user_id\",\"provider_name\":\"api\",\"return_url\":\"$base/\"}" | json_field connection_id)"
curl -fs -X POST "$base/v1/connections/$connection_id/credentials" "${admin[@]}" -d '{"api_key":"sk-bench"}' >/dev/null
bridge_key="$(curl -fs -X POST "$base/v1/admin/api-keys" "${admin[@]}" -d "{\"name\":\"agent\",\"workspaces\":[\"$user_id\"],\"can_read_credentials\":false}" | json_field api_key)"

# The assistant: registers itself, sends the person to /oauth2/authorize, redeems the code for an /mcp token.
redirect="http://127.0.0.1:18199/callback"
client_id="$(curl -fs -X POST "$base/oauth2/register" -H 'Content-Type: application/json' -d "{\"client_name\":\"bench assistant\",\"redirect_uris\":[\"$redirect\"],
  \"grant_types\":[\"authorization_code\"],\"token_endpoint_auth_method\":\"none\",\"scope\":\"nexus:connections nexus:connect nexus:call\"}" | json_field client_id)"
verifier="$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
challenge="$(printf '%s' "$verifier" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\n')"
jar="$work/cookies"
curl -fs -c "$jar" -b "$jar" "$base/account/signin" > "$work/signin.html"
signin=(); while IFS= read -r field; do signin+=(--data-urlencode "$field"); done < <(form_fields /account/signin < "$work/signin.html")
curl -fs -c "$jar" -b "$jar" -o /dev/null "$base/account/signin" "${signin[@]}" --data-urlencode "email=$email" --data-urlencode "password=$password"
authorize="$base/oauth2/authorize?response_type=code&client_id=$client_id&redirect_uri=$(uri "$redirect")&scope=nexus%3Aconnections%20nexus%3Acall&state=bench&code_challenge=$challenge&code_challenge_method=S256&resource=$(uri "$base/mcp")"
curl -fs -c "$jar" -b "$jar" "$authorize" > "$work/consent.html"
consent=(); while IFS= read -r field; do consent+=(--data-urlencode "$field"); done < <(form_fields /oauth2/authorize < "$work/consent.html")
location="$(curl -s -c "$jar" -b "$jar" -o "$work/consent-post.html" -w "%{redirect_url}" "$base/oauth2/authorize" "${consent[@]}" --data-urlencode decision=allow)"
code="$(sed -nE 's/.*[?&]code=([^&]+).*/\1/p' <<<"$location")"
[ -n "$code" ] || { echo "no authorization code; the consent page answered:" >&2; head -c 1500 "$work/consent-post.html" >&2; exit 1; }
token="$(curl -fs -X POST "$base/oauth2/token" -d grant_type=authorization_code -d "code=$code" --data-urlencode "redirect_uri=$redirect" \
  -d "client_id=$client_id" -d "code_verifier=$verifier" --data-urlencode "resource=$base/mcp" | json_field access_token)"

# Every MCP request: stateless Streamable HTTP, one JSON-RPC request per POST.
mcp_body() { printf '{"jsonrpc":"2.0","id":1,"method":"%s","params":%s}' "$1" "$2"; }
list_body="$(mcp_body tools/list '{}')"
call_body="$(mcp_body tools/call '{"name":"call_api","arguments":{"service":"api","method":"GET","path":"/items"}}')"
mcp_check() {
  curl -fs "$base/mcp" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'MCP-Protocol-Version: 2025-11-25' -d "$1"
}
mcp_check "$list_body" | grep -q '"call_api"' || { echo "tools/list did not list call_api" >&2; mcp_check "$list_body" >&2; exit 1; }
mcp_check "$call_body" | grep -q '"structuredContent":{"status":200' || { echo "call_api did not reach the upstream:" >&2; mcp_check "$call_body" >&2; exit 1; }
curl -fs "$base/v1/bridge/$connection_id/items" -H "X-API-Key: $bridge_key" >/dev/null || { echo "the direct Bridge call failed" >&2; exit 1; }

lua_post() { # file body
  { printf 'wrk.method = "POST"\nwrk.body = [[%s]]\n' "$2"
    printf 'wrk.headers["Authorization"] = "Bearer %s"\nwrk.headers["Content-Type"] = "application/json"\n' "$token"
    printf 'wrk.headers["Accept"] = "application/json, text/event-stream"\nwrk.headers["MCP-Protocol-Version"] = "2025-11-25"\n'; } > "$1"
}
lua_post "$work/list.lua" "$list_body"
lua_post "$work/call.lua" "$call_body"
printf 'wrk.headers["X-API-Key"] = "%s"\n' "$bridge_key" > "$work/bridge.lua"

measure() { # connections seconds url [lua] -> "rps p50 p99 non2xx"
  local out="$work/wrk.out"
  wrk -t1 -c"$1" -d"$2s" --latency ${4:+-s "$4"} "$3" > "$out"
  wrk_summary "$out"
}
paths=("GET /healthz|$base/healthz|"
  "direct Bridge call (GET /v1/bridge/{id}/items)|$base/v1/bridge/$connection_id/items|$work/bridge.lua"
  "MCP tools/list|$base/mcp|$work/list.lua"
  "MCP tools/call call_api (GET /items through the Bridge)|$base/mcp|$work/call.lua")
warm_up="$(bench_jit_warmup "$duration")"
echo "== one request at a time: $rounds interleaved rounds after ${warm_up} s of warm-up" >&2
"$(command -v dotnet)" "$latency_dll" "$base" "$token" "$bridge_key" "$connection_id" "$rounds" "http://127.0.0.1:$bare_port" "$warm_up" > "$work/latency.out"
cat "$work/latency.out" >&2
field() { awk -F'|' -v l="$1" -v f="$2" 'index($1, l) == 1 { print $f }' "$work/latency.out"; }
sequential=""
while IFS='|' read -r label p50 p90; do
  case "$label" in *paired*) ;; *) sequential+="| $label | $p50 | $p90 |"$'\n';; esac
done < "$work/latency.out"
health_p50="$(field "GET /healthz" 2)"; bridge_p50="$(field "direct Bridge" 2)"; list_p50="$(field "MCP tools/list" 2)"; call_p50="$(field "MCP tools/call" 2)"
overhead="$(field "call_api - Bridge" 2)"
list_over="$(field "tools/list - healthz" 2)"
sdk_floor="$(field "SDK alone: tools/call echo - healthz" 2)"

echo "== 8 connections (wrk), ${duration}s per path after a 3 s warm-up" >&2
paths=("GET /healthz|$base/healthz|"
  "direct Bridge call (GET /v1/bridge/{id}/items)|$base/v1/bridge/$connection_id/items|$work/bridge.lua"
  "MCP tools/list|$base/mcp|$work/list.lua"
  "MCP tools/call call_api (GET /items through the Bridge)|$base/mcp|$work/call.lua")
rows=""
for path in "${paths[@]}"; do
  IFS='|' read -r label url script <<<"$path"
  measure 8 3 "$url" "$script" >/dev/null
  read -r rps p50 p99 bad <<<"$(measure 8 "$duration" "$url" "$script")"
  echo "8 connections, $label: $rps req/s, p50 $p50 ms, p99 $p99 ms, non-2xx $bad" >&2
  rows+="| $label | $rps | $p50 | $p99 | $bad |"$'\n'
done

result="$(dirname "${BASH_SOURCE[0]}")/results/mcp.md"
{
  echo "# MCP server overhead"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine); one-minute load average $load_start at the start (a benchmark that ended just before still counts in it), $(cut -d' ' -f1 /proc/loadavg) at the end (this one's own processes included)"
  echo "- one request at a time: bench/tools/McpLatency, $rounds rounds of one request to each path in turn (after ${warm_up} s of rounds as warm-up, past the JIT's tiering) on kept-alive connections"
  echo "- 8 connections: wrk -t1 -c8, ${duration}s per path after a 3 s warm-up"
  echo "- Nexus: Production, SQLite; /mcp stateless Streamable HTTP; token from DCR + authorization code with PKCE and resource=BASE_URL/mcp"
  echo "- upstream: bench/tools/FakeProvider /api/items (small JSON), api_key credential injected by the Bridge"
  echo
  echo "One request at a time:"
  echo
  echo "| path | p50 (ms) | p90 (ms) |"
  echo "|---|---:|---:|"
  printf '%s' "$sequential"
  echo
  echo "8 connections:"
  echo
  echo "| path | requests/s | p50 (ms) | p99 (ms) | non-2xx |"
  echo "|---|---:|---:|---:|---:|"
  printf '%s' "$rows"
  echo
  echo "- **call_api p50 overhead over a direct Bridge call, one request at a time: $overhead ms** (target ≤ 0.3 ms; median of the per-round differences): call_api $call_p50 ms, Bridge $bridge_p50 ms p50"
  echo "- tools/list over GET /healthz: $list_over ms p50 (tools/list $list_p50 ms, GET /healthz $health_p50 ms)"
  echo "- **the official SDK alone** (bench/tools/BareMcp: its stateless endpoint, a tool that returns its argument, no authorization, no storage): tools/call over its own GET /healthz: **$sdk_floor ms** p50, measured in the same rounds"
} > "$result"
echo; cat "$result"
