#!/usr/bin/env bash
# Scale (issue #20): Nexus on PostgreSQL with N connections (default 1,000,000) spread over 10,000 workspaces.
#   1. GET /v1/token/{id} over random ids, first with 1,000 connections in the database, then (same run, same
#      servers) with N: the ratio of the two read rates is the figure (target: N reads at least 1/1.2 of 1,000's).
#      Two Nexus instances on the same database answer: one with the default row cache (ConnectionCacheSeconds=5),
#      which at 1,000 ids serves nearly every read from memory, and one with ConnectionCacheSeconds=0, which reads
#      the row from PostgreSQL on every request and so measures what the table's size costs a read.
#   2. The EXPLAIN (ANALYZE) plans of the background refresher's due-connection query and of GET /v1/connections
#      pages (a workspace's first and last page, and a key that sees all workspaces, deep in the list), plus the
#      time of GET /v1/connections for the first and the last page of one workspace through the API.
# The connections are written by bench/tools/ScaleSeed (binary COPY, tokens encrypted by Nexus's own KeyRing for
# each row); GET /v1/token of one of them is checked to return its plaintext before anything is measured.
#   bench/scale.sh [connections] [seconds]      defaults: 1000000 15
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
n="${1:-1000000}"
duration="${2:-15}"
small=1000
workspaces=10000
[ "$n" -gt "$small" ] || { echo "connections must be more than $small" >&2; exit 2; }
need wrk curl
build_nexus
bench_build "$bench_root/bench/tools/ScaleSeed" -c Release -nologo -v quiet >/dev/null
seed_dll="$bench_root/bench/tools/ScaleSeed/bin/Release/net10.0/ScaleSeed.dll"
port="${PORT:-18490}"
port_uncached=$((port + 1))
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

pids=(); datas=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  for dir in "${datas[@]}"; do rm -rf "$dir"; done
  rm -f "${lua:-}"
  pg_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

json_field() { sed -E "s/.*\"$1\":\"?([^,\"}]+)\"?.*/\1/"; }
psql_() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres "$@"; }

start_pg
bench_encryption_key="$(head -c 32 /dev/urandom | base64)"
start_nexus "$port" "DATABASE_URL=$pg_url" Nexus__AllowInsecureUpstreams=true
pids+=("$nexus_pid"); datas+=("$nexus_data")
admin_key="$nexus_api_key"
start_nexus "$port_uncached" "DATABASE_URL=$pg_url" Nexus__AllowInsecureUpstreams=true Nexus__ConnectionCacheSeconds=0
pids+=("$nexus_pid"); datas+=("$nexus_data")
base="http://127.0.0.1:$port"
admin=(-H "X-API-Key: $admin_key" -H 'Content-Type: application/json')
# The provider is never called: every token is valid for an hour or more.
curl -fs -X POST "$base/v1/providers" "${admin[@]}" -d '{"name":"scale","authorization_url":"http://127.0.0.1:9/authorize",
  "token_url":"http://127.0.0.1:9/token","client_id":"scale-client","client_secret":"scale-secret","scopes":["read"],"pkce":true}' >/dev/null
gateway_key="$(curl -fs -X POST "$base/v1/admin/api-keys" "${admin[@]}" -d '{"name":"scale","workspaces":["*"]}' | json_field api_key)"
workspace_key="$(curl -fs -X POST "$base/v1/admin/api-keys" "${admin[@]}" -d '{"name":"scale-ws","workspaces":["ws_scale_00042"]}' | json_field api_key)"

seed() { # from count
  echo "== writing connections $1 … $(($1 + $2 - 1))" >&2
  dotnet "$seed_dll" --database "$pg_url" --encryption-key "$bench_encryption_key" --provider scale --from "$1" --count "$2" --workspaces "$workspaces"
}

lua="$(mktemp /tmp/nexus-bench-scale.XXXXXX)"
write_lua() { # ids
  cat > "$lua" <<EOF
wrk.headers["X-API-Key"] = "$gateway_key"
local ids = $1
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(os.time() * 1000 + seed) end
function request() return wrk.format("GET", string.format("/v1/token/conn_scale_%08d", math.random(0, ids - 1))) end
EOF
}

small_seed="$(seed 0 "$small")"
token="$(curl -fs "$base/v1/token/conn_scale_00000042" -H "X-API-Key: $gateway_key" | json_field access_token)"
[ "$token" = scale-at-42 ] || { echo "GET /v1/token did not return the seeded token (got '$token')" >&2; exit 1; }

write_lua "$small"
echo "== JIT warm-up" >&2
for p in "$port" "$port_uncached"; do wrk -t2 -c32 -d"$(bench_jit_warmup "$duration")s" -s "$lua" "http://127.0.0.1:$p/" >/dev/null; done
declare -A result
measure_both() { # label
  for p in "$port" "$port_uncached"; do
    local pid="${pids[0]}"; [ "$p" = "$port_uncached" ] && pid="${pids[1]}"
    echo "== $1 connections, port $p" >&2
    result["$1,$p"]="$(bench_measure "$pid" "$duration" "http://127.0.0.1:$p/" "$lua")"
    echo "   ${result["$1,$p"]}" >&2
  done
}
measure_both small
size_before="$(psql_ -At -c "SELECT pg_size_pretty(pg_total_relation_size('connections'))")"

t0=$SECONDS
big_seed="$(seed "$small" $((n - small)))"
seed_seconds=$((SECONDS - t0))
size_after="$(psql_ -At -c "SELECT pg_size_pretty(pg_total_relation_size('connections'))")"
token="$(curl -fs "$base/v1/token/conn_scale_$(printf %08d $((n - 1)))" -H "X-API-Key: $gateway_key" | json_field access_token)"
[ "$token" = "scale-at-$((n - 1))" ] || { echo "GET /v1/token did not return the seeded token (got '$token')" >&2; exit 1; }
write_lua "$n"
measure_both big

# Plans: literal values, as the server's parameters would be.
now_ms="$(($(date +%s) * 1000))"
horizon=$((now_ms + 6 * 3600 * 1000)) # six hours ahead: some thousands of connections due, like a refresher's pass that fell behind
columns="id, workspace_id, provider_name, status, scopes, return_url, state_nonce, state_expires_at, state_used_at, pkce_verifier, access_token, refresh_token, token_type, token_expires_at, error, error_description, created_by, created_at, updated_at, connection_config, granted_scopes, next_refresh_at, refresh_failures, refresh_error, refresh_error_description, last_refreshed_at, reconnect_scopes"
oldest_ws="$(psql_ -At -c "SELECT created_at || ' ' || id FROM connections WHERE workspace_id = 'ws_scale_00042' ORDER BY created_at, id OFFSET 1 LIMIT 1")"
deep_all="$(psql_ -At -c "SELECT created_at || ' ' || id FROM connections ORDER BY created_at, id OFFSET 100 LIMIT 1")"
explain() { psql_ -At -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) $1"; }
plan_due="$(explain "SELECT id FROM connections WHERE status = 'active' AND next_refresh_at IS NOT NULL AND next_refresh_at <= $horizon ORDER BY next_refresh_at LIMIT 200")"
plan_first="$(explain "SELECT $columns FROM connections WHERE workspace_id IN ('ws_scale_00042') ORDER BY created_at DESC, id DESC LIMIT 11")"
read -r c i <<<"$oldest_ws"
plan_last="$(explain "SELECT $columns FROM connections WHERE workspace_id IN ('ws_scale_00042') AND created_at <= $c AND (created_at < $c OR id < '$i') ORDER BY created_at DESC, id DESC LIMIT 11")"
read -r c i <<<"$deep_all"
plan_all="$(explain "SELECT $columns FROM connections WHERE created_at <= $c AND (created_at < $c OR id < '$i') ORDER BY created_at DESC, id DESC LIMIT 101")"

# A workspace's list through the API, page by page (10 per page), each page's time (the first and the last are reported).
page_times=(); cursor=""
while :; do
  out="$(curl -fs -w '\n%{time_total}' "$base/v1/connections?workspace_id=ws_scale_00042&limit=10${cursor:+&cursor=$cursor}" -H "X-API-Key: $workspace_key")"
  page_times+=("$(tail -1 <<<"$out")")
  cursor="$(head -1 <<<"$out" | sed -nE 's/.*"next_cursor":"([^"]+)".*/\1/p')"
  [ -n "$cursor" ] || break
done

load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
field() { cut -d' ' -f"$2" <<<"$1"; }
rate() { field "${result["$1,$2"]}" 1; }
r_cached="$(ratio "$(rate small "$port")" "$(rate big "$port")")"
r_uncached="$(ratio "$(rate small "$port_uncached")" "$(rate big "$port_uncached")")"
row() { # label size port
  local r="${result["$1,$3"]}"
  echo "| $2 | $([ "$3" = "$port" ] && echo "default (5 s row cache)" || echo "ConnectionCacheSeconds=0") | $(field "$r" 1) | $(field "$r" 2) | $(field "$r" 3) | $(field "$r" 4) | $(field "$r" 5) |"
}
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }
verdict() { awk -v r="$1" 'BEGIN { print (r != "—" && r + 0 <= 1.2) ? "met" : "missed" }'; }
uses_index() { if grep -q 'Seq Scan' <<<"$1" || ! grep -qE 'Index (Only )?Scan' <<<"$1"; then echo "**no index**"; else echo "uses an index"; fi; }

result_file="$(dirname "${BASH_SOURCE[0]}")/results/scale.md"
{
  echo "# Scale: 1,000 and $(printf "%'d" "$n") connections on PostgreSQL"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine)"
  echo "- load average: $load_start at the start, $load_end at the end (a shared machine: the ratios, taken in one run, are the figures; the absolute rates are not)"
  echo "- connections: written by bench/tools/ScaleSeed over $(printf "%'d" "$workspaces") workspaces, every token encrypted for its row by Nexus's KeyRing: $small in $(json_field seconds <<<"$small_seed") s, then $((n - small)) more in ${seed_seconds} s (with ANALYZE); table with indexes $size_before, then $size_after"
  echo "- load: wrk -t2 -c32 -d${duration}s after $(bench_warmup "$duration") s of warm-up (and $(bench_jit_warmup "$duration") s of JIT warm-up first), GET /v1/token/{id} over ids drawn at random from all connections in the table, a gateway key that sees every workspace"
  echo "- two Nexus instances on the same database, the default one and one that reads the row from PostgreSQL on every request"
  echo
  echo "| connections | settings | reads/s | p50 (ms) | p99 (ms) | non-2xx | server CPU µs/read |"
  echo "|---:|---|---:|---:|---:|---:|---:|"
  row small "$small" "$port"
  row big "$n" "$port"
  row small "$small" "$port_uncached"
  row big "$n" "$port_uncached"
  echo
  echo "- **1,000 ÷ $(printf "%'d" "$n"), database read on every request: $r_uncached×** (target ≤ 1.2×: $(verdict "$r_uncached")): what the table's size costs a read"
  echo "- 1,000 ÷ $(printf "%'d" "$n"), default settings: $r_cached× ($(verdict "$r_cached")): at 1,000 ids the 5-second row cache answers nearly every read from"
  echo "  memory; over $(printf "%'d" "$n") random ids nearly every read misses it and goes to PostgreSQL, so this ratio is the cache's hit rate more than the table's size"
  echo
  echo "## The background refresher's due-connection query: $(uses_index "$plan_due")"
  echo
  echo "RefreshStore.DueAsync, with the horizon six hours ahead (a pass with a backlog due):"
  echo
  echo '```'; echo "$plan_due"; echo '```'
  echo
  echo "## GET /v1/connections: keyset pages"
  echo
  echo "ConnectionStore.ListAsync pages by (created_at, id) after the previous page's last row (the API's opaque next_cursor),"
  echo "never by OFFSET. Through the API, ws_scale_00042's $((${#page_times[@]})) pages of 10: first page $(ms "${page_times[0]}") ms, last page $(ms "${page_times[-1]}") ms."
  echo
  echo "A workspace's first page ($(uses_index "$plan_first")):"
  echo
  echo '```'; echo "$plan_first"; echo '```'
  echo
  echo "The same workspace's last page, after a cursor ($(uses_index "$plan_last")):"
  echo
  echo '```'; echo "$plan_last"; echo '```'
  echo
  echo "A key that sees every workspace, a page of 100 near the end of $(printf "%'d" "$n") rows ($(uses_index "$plan_all")):"
  echo
  echo '```'; echo "$plan_all"; echo '```'
} > "$result_file"
summary_row "GET /v1/token/{id}, 1,000 ÷ $n connections, database read (PostgreSQL; issue #20 scale)" "$(rate big "$port_uncached")" "" "" "" "" "" "≤ 1.2×" "$(verdict "$r_uncached")" "$r_uncached×; default settings $r_cached× (cache hit rate)"
echo
cat "$result_file"
