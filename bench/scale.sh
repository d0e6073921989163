#!/usr/bin/env bash
# Scale (issue #20): Nexus on PostgreSQL with N connections (default 1,000,000) spread over 10,000 workspaces.
#   1. GET /v1/token/{id} over random ids with 1,000 connections in one database and N in another (same cluster, same
#      run): the ratio of the two read rates is the figure (target: 1,000's rate ÷ N's ≤ 1.2). Measurements alternate
#      between the two for ROUNDS rounds, so that a change in the machine's load falls on both alike; the median of
#      the rounds is reported. Each database has two Nexus instances: one with the default row cache
#      (ConnectionCacheSeconds=5), which at 1,000 ids serves nearly every read from memory, and one with
#      ConnectionCacheSeconds=0, which reads the row from PostgreSQL on every request and so measures what the
#      table's size costs a read.
#   2. The EXPLAIN (ANALYZE) plans of the background refresher's due-connection query and of GET /v1/connections
#      pages (a workspace's first and last page, and a key that sees all workspaces, deep in the list), plus the
#      time of GET /v1/connections for the first and the last page of one workspace through the API.
# The connections are written by bench/tools/ScaleSeed (binary COPY, tokens encrypted by Nexus's own KeyRing for
# each row); GET /v1/token of the last one is checked to return its plaintext before anything is measured.
#   bench/scale.sh [connections] [seconds] [rounds]      defaults: 1000000 15 2
# Both databases are settled first (VACUUM (FREEZE, ANALYZE), CHECKPOINT, pg_prewarm); SCALE_SETTLE=0 measures them as
# freshly written. SCALE_DB_OPTIONS=… is appended to the instances' connection strings (e.g. "Max Auto Prepare=0");
# SCALE_SHARED_BUFFERS sets PostgreSQL's buffer cache (default 1GB). The table has PostgreSQL's CPU per read beside Nexus's.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
n="${1:-1000000}"
duration="${2:-15}"
rounds="${3:-2}"
small=1000
workspaces=10000
[ "$n" -gt "$small" ] || { echo "connections must be more than $small" >&2; exit 2; }
need wrk curl
build_nexus
bench_build "$bench_root/bench/tools/ScaleSeed" -c Release -nologo -v quiet >/dev/null
seed_dll="$bench_root/bench/tools/ScaleSeed/bin/Release/net10.0/ScaleSeed.dll"
port="${PORT:-18490}"
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

pids=(); datas=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  for dir in "${datas[@]}"; do rm -rf "$dir"; done
  rm -f "${lua_small:-}" "${lua_big:-}"
  pg_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

json_field() { sed -E "s/.*\"$1\":\"?([^,\"}]+)\"?.*/\1/"; }
psql_() { local db="$1"; shift; "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d "$db" "$@"; }
db_url() { echo "${pg_url/Database=postgres/Database=$1}"; }

# PostgreSQL's buffer cache sized to hold the big table and its indexes (about 500 MB per million connections), as a
# deployment of that size would set it (SCALE_SHARED_BUFFERS=128MB: the default, for comparison).
shared_buffers="${SCALE_SHARED_BUFFERS:-1GB}"
start_pg -c shared_buffers="$shared_buffers"
psql_ postgres -c "CREATE DATABASE scale_small" -c "CREATE DATABASE scale_big"
bench_encryption_key="$(head -c 32 /dev/urandom | base64)"
# Four instances: small cached, small uncached, big cached, big uncached, on ports port … port+3.
declare -A port_of pid_of key_of
i=0
for size in small big; do
  for cache in cached uncached; do
    p=$((port + i)); i=$((i + 1))
    extra=("DATABASE_URL=$(db_url "scale_$size")${SCALE_DB_OPTIONS:+;$SCALE_DB_OPTIONS}" Nexus__AllowInsecureUpstreams=true)
    [ "$cache" = uncached ] && extra+=(Nexus__ConnectionCacheSeconds=0)
    start_nexus "$p" "${extra[@]}"
    pids+=("$nexus_pid"); datas+=("$nexus_data")
    port_of[$size,$cache]=$p; pid_of[$size,$cache]=$nexus_pid; key_of[$size,$cache]=$nexus_api_key
  done
done

# Per database: the provider (never called: every token is valid for an hour or more) and a gateway key for all workspaces.
declare -A gateway_key
for size in small big; do
  base="http://127.0.0.1:${port_of[$size,cached]}"
  admin=(-H "X-API-Key: ${key_of[$size,cached]}" -H 'Content-Type: application/json')
  curl -fs -X POST "$base/v1/providers" "${admin[@]}" -d '{"name":"scale","authorization_url":"http://127.0.0.1:9/authorize",
    "token_url":"http://127.0.0.1:9/token","client_id":"scale-client","client_secret":"scale-secret","scopes":["read"],"pkce":true}' >/dev/null
  gateway_key[$size]="$(curl -fs -X POST "$base/v1/admin/api-keys" "${admin[@]}" -d '{"name":"scale","workspaces":["*"]}' | json_field api_key)"
done
big_base="http://127.0.0.1:${port_of[big,cached]}"
workspace_key="$(curl -fs -X POST "$big_base/v1/admin/api-keys" -H "X-API-Key: ${key_of[big,cached]}" -H 'Content-Type: application/json' \
  -d '{"name":"scale-ws","workspaces":["ws_scale_00042"]}' | json_field api_key)"

seed() { # database count
  echo "== writing $2 connections into $1" >&2
  dotnet "$seed_dll" --database "$(db_url "$1")" --encryption-key "$bench_encryption_key" --provider scale --from 0 --count "$2" --workspaces "$workspaces"
}
small_seed="$(seed scale_small "$small")"
t0=$SECONDS
seed scale_big "$n" >/dev/null
seed_seconds=$((SECONDS - t0))
for size in small big; do
  last=$([ "$size" = small ] && echo $((small - 1)) || echo $((n - 1)))
  for cache in cached uncached; do
    token="$(curl -fs "http://127.0.0.1:${port_of[$size,$cache]}/v1/token/conn_scale_$(printf %08d "$last")" -H "X-API-Key: ${gateway_key[$size]}" | json_field access_token)"
    [ "$token" = "scale-at-$last" ] || { echo "GET /v1/token did not return the seeded token (got '$token')" >&2; exit 1; }
  done
done
# Settled as a deployment's table would be (SCALE_SETTLE=0 measures the freshly written tables instead): its rows
# vacuumed and frozen (freshly COPYed rows have no hint bits, so the first read of each page would write it, and
# autovacuum's first pass over a million new rows would run during the measurement), a checkpoint taken, and the table
# and its indexes read into the buffer cache (pg_prewarm), where a server that has run for a while keeps its hot pages.
settle="${SCALE_SETTLE:-1}"
if [ "$settle" = 1 ]; then
  echo "== settling: VACUUM (FREEZE, ANALYZE), CHECKPOINT, pg_prewarm" >&2
  for db in scale_small scale_big; do
    psql_ "$db" -c "VACUUM (FREEZE, ANALYZE) connections" -c "CHECKPOINT" -c "CREATE EXTENSION IF NOT EXISTS pg_prewarm" \
      -c "SELECT pg_prewarm('connections'::regclass) + sum(pg_prewarm(indexrelid)) FROM pg_index WHERE indrelid = 'connections'::regclass" >/dev/null
  done
fi
size_small="$(psql_ scale_small -At -c "SELECT pg_size_pretty(pg_total_relation_size('connections'))")"
size_big="$(psql_ scale_big -At -c "SELECT pg_size_pretty(pg_total_relation_size('connections'))")"

write_lua() { # file ids key
  cat > "$1" <<LUA
wrk.headers["X-API-Key"] = "$3"
local ids = $2
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(os.time() * 1000 + seed) end
function request() return wrk.format("GET", string.format("/v1/token/conn_scale_%08d", math.random(0, ids - 1))) end
LUA
}
lua_small="$(mktemp /tmp/nexus-bench-scale.XXXXXX)"; write_lua "$lua_small" "$small" "${gateway_key[small]}"
lua_big="$(mktemp /tmp/nexus-bench-scale.XXXXXX)"; write_lua "$lua_big" "$n" "${gateway_key[big]}"
lua_for() { if [ "$1" = small ]; then echo "$lua_small"; else echo "$lua_big"; fi; }

# PostgreSQL's CPU per read beside Nexus's (bench_measure's sixth column): every process of the cluster, backends included.
bench_also_pids() { pgrep -u postgres -x postgres; }
echo "== JIT warm-up" >&2
for size in small big; do for cache in cached uncached; do
  wrk -t2 -c32 -d"$(bench_jit_warmup "$duration")s" -s "$(lua_for "$size")" "http://127.0.0.1:${port_of[$size,$cache]}/" >/dev/null
done; done
declare -A runs
for round in $(seq 1 "$rounds"); do
  for cache in cached uncached; do for size in small big; do
    echo "== round $round: $size, $cache" >&2
    r="$(bench_measure "${pid_of[$size,$cache]}" "$duration" "http://127.0.0.1:${port_of[$size,$cache]}/" "$(lua_for "$size")")"
    echo "   $r" >&2
    runs[$size,$cache]+="$r"$'\n'
  done; done
done
# The median over the rounds of each column (req/s p50 p99 non-2xx cpu).
median() { sed '/^$/d' | awk -v c="$1" '{ print $c }' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A result
for key in "${!runs[@]}"; do
  result[$key]="$(for c in 1 2 3 4 5 6; do median "$c" <<<"${runs[$key]}"; done | paste -sd' ')"
done

# Plans on the big database: literal values, as the server's parameters would be.
now_ms="$(($(date +%s) * 1000))"
horizon=$((now_ms + 6 * 3600 * 1000)) # six hours ahead: a pass with a backlog due
columns="id, workspace_id, provider_name, status, scopes, return_url, state_nonce, state_expires_at, state_used_at, pkce_verifier, access_token, refresh_token, token_type, token_expires_at, error, error_description, created_by, created_at, updated_at, connection_config, granted_scopes, next_refresh_at, refresh_failures, refresh_error, refresh_error_description, last_refreshed_at, reconnect_scopes"
oldest_ws="$(psql_ scale_big -At -c "SELECT created_at || ' ' || id FROM connections WHERE workspace_id = 'ws_scale_00042' ORDER BY created_at, id OFFSET 1 LIMIT 1")"
deep_all="$(psql_ scale_big -At -c "SELECT created_at || ' ' || id FROM connections ORDER BY created_at, id OFFSET 100 LIMIT 1")"
explain() { psql_ scale_big -At -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) $1"; }
# The rows RefreshStore.ClaimDueAsync claims (its UPDATE's subquery; the UPDATE itself would claim them).
plan_due="$(explain "SELECT id FROM connections WHERE status = 'active' AND next_refresh_at IS NOT NULL AND next_refresh_at <= $horizon AND (refresh_claimed_until IS NULL OR refresh_claimed_until <= $now_ms) ORDER BY next_refresh_at LIMIT 200 FOR UPDATE SKIP LOCKED")"
plan_first="$(explain "SELECT $columns FROM connections WHERE workspace_id IN ('ws_scale_00042') ORDER BY created_at DESC, id DESC LIMIT 11")"
read -r c i <<<"$oldest_ws"
plan_last="$(explain "SELECT $columns FROM connections WHERE workspace_id IN ('ws_scale_00042') AND created_at <= $c AND (created_at < $c OR id < '$i') ORDER BY created_at DESC, id DESC LIMIT 11")"
read -r c i <<<"$deep_all"
plan_all="$(explain "SELECT $columns FROM connections WHERE created_at <= $c AND (created_at < $c OR id < '$i') ORDER BY created_at DESC, id DESC LIMIT 101")"

# A workspace's list through the API, page by page (10 per page), each page's time (the first and the last are reported).
page_times=(); cursor=""
while :; do
  out="$(curl -fs -w '\n%{time_total}' "$big_base/v1/connections?workspace_id=ws_scale_00042&limit=10${cursor:+&cursor=$cursor}" -H "X-API-Key: $workspace_key")"
  page_times+=("$(tail -1 <<<"$out")")
  cursor="$(head -1 <<<"$out" | sed -nE 's/.*"next_cursor":"([^"]+)".*/\1/p')"
  [ -n "$cursor" ] || break
done

load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
field() { cut -d' ' -f"$2" <<<"$1"; }
rate() { field "${result["$1,$2"]}" 1; }
r_cached="$(ratio "$(rate small cached)" "$(rate big cached)")"
r_uncached="$(ratio "$(rate small uncached)" "$(rate big uncached)")"
row() { # size cache
  local r="${result["$1,$2"]}"
  echo "| $([ "$1" = small ] && echo "$small" || echo "$n") | $([ "$2" = cached ] && echo "default (5 s row cache)" || echo "ConnectionCacheSeconds=0") | $(field "$r" 1) | $(field "$r" 2) | $(field "$r" 3) | $(field "$r" 4) | $(field "$r" 5) | $(field "$r" 6) | $(sed '/^$/d' <<<"${runs[$1,$2]}" | cut -d' ' -f1 | paste -sd' ' | sed 's/ /, /g') |"
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
  echo "- load average: $load_start at the start, $load_end at the end (a shared machine: the ratios, taken in one run, are the figures;"
  echo "  the absolute rates are not, and all of them must be retaken on an idle machine)"
  echo "- connections: written by bench/tools/ScaleSeed over $(printf "%'d" "$workspaces") workspaces, every token encrypted for its row by"
  echo "  Nexus's KeyRing: $small into database scale_small in $(json_field seconds <<<"$small_seed") s ($size_small with indexes), $n into scale_big"
  echo "  in ${seed_seconds} s with ANALYZE ($size_big); one PostgreSQL cluster with default settings but shared_buffers=$shared_buffers"
  if [ "$settle" = 1 ]; then
    echo "- settled before the measurement, as a deployment's table would be: VACUUM (FREEZE, ANALYZE), CHECKPOINT, and the table and"
    echo "  its indexes read into the buffer cache with pg_prewarm (SCALE_SETTLE=0: measured as freshly written)"
  else
    echo "- measured as freshly written (SCALE_SETTLE=0): no VACUUM, no prewarm; the first read of each page sets its hint bits"
  fi
  echo "- load: wrk -t2 -c32 -d${duration}s after $(bench_warmup "$duration") s of warm-up (and $(bench_jit_warmup "$duration") s of JIT warm-up first), GET /v1/token/{id}"
  echo "  over ids drawn at random from all connections in the database, a gateway key that sees every workspace"
  echo "- four Nexus instances: per database the default one and one that reads the row from PostgreSQL on every request;"
  echo "  $rounds rounds alternating between the databases, the median reported (each round's reads/s in the last column)"
  echo
  echo "| connections | settings | reads/s | p50 (ms) | p99 (ms) | non-2xx | Nexus CPU µs/read | PostgreSQL CPU µs/read | rounds (reads/s) |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---|"
  row small cached
  row big cached
  row small uncached
  row big uncached
  echo
  echo "- **1,000 ÷ $(printf "%'d" "$n"), database read on every request: $r_uncached×** (target ≤ 1.2×: $(verdict "$r_uncached")): what the table's size costs a read"
  echo "- 1,000 ÷ $(printf "%'d" "$n"), default settings: $r_cached× ($(verdict "$r_cached")): at 1,000 ids the 5-second row cache answers nearly every read from"
  echo "  memory; over $(printf "%'d" "$n") random ids nearly every read misses it and goes to PostgreSQL, so this ratio is the cache's hit rate more than the table's size"
  echo
  echo "## The background refresher's due-connection query: $(uses_index "$plan_due")"
  echo
  echo "RefreshStore.ClaimDueAsync (the rows it claims), with the horizon six hours ahead (a pass with a backlog due):"
  echo
  echo '```'; echo "$plan_due"; echo '```'
  echo
  echo "## GET /v1/connections: keyset pages"
  echo
  echo "ConnectionStore.ListAsync pages by (created_at, id) after the previous page's last row (the API's opaque next_cursor),"
  echo "never by OFFSET. Through the API, ws_scale_00042's ${#page_times[@]} pages of 10: first page $(ms "${page_times[0]}") ms, last page $(ms "${page_times[-1]}") ms."
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
summary_row "GET /v1/token/{id}, 1,000 ÷ $n connections, database read (PostgreSQL; issue #20 scale)" "$(rate big uncached)" "" "" "" "" "" "≤ 1.2×" "$(verdict "$r_uncached")" \
  "$r_uncached×; default settings $r_cached× (the row cache's hit rate)"
echo
cat "$result_file"
