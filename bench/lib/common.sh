# Shared by the benchmarks: build Nexus once, start it on loopback with a fresh database, stop it afterwards.
# Benchmarks are measurements, not tests: they never fail on a number, they report it.
set -euo pipefail
bench_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$bench_root/scripts/lib/pg.sh"

# A throwaway PostgreSQL cluster with default durability settings (unlike the test suite's): sets pg_url.
start_pg() { # [-c option=value...]: more server options
  pg_find || { need postgresql; pg_find; } || return 1
  pg_start -c max_connections=200 "$@"
}

need() {
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null; then
      echo "Installing $tool" >&2
      if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
      else sudo apt-get update -qq >/dev/null; sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null; fi
    fi
  done
}

# bench_build PROJECT...: dotnet build, skipped when bench/run-all.sh has built everything already (BENCH_BUILT=1).
bench_build() { [ "${BENCH_BUILT:-}" = 1 ] || dotnet build "$@"; }

build_nexus() {
  bench_build "$bench_root/src/Nexus.Server" -c Release -nologo -v quiet >/dev/null
  # BENCH_NEXUS_DLL: a copy of the build elsewhere, so that a long run is not disturbed by the next build.
  nexus_dll="${BENCH_NEXUS_DLL:-$bench_root/src/Nexus.Server/bin/Release/net10.0/Nexus.Server.dll}"
}

# start_nexus PORT [extra env...]: starts Nexus in Production on 127.0.0.1:PORT with SQLite (or DATABASE_URL).
# NEXUS_BENCH_ENV (space-separated NAME=value pairs) adds settings to every run, e.g. Nexus__Telemetry__Enabled=false.
# Sets nexus_pid, nexus_data, nexus_api_key and nexus_encryption_key. Several instances on one database need the same
# ENCRYPTION_KEY: set bench_encryption_key (a base64 32-byte key) before starting them, and keep each nexus_pid.
start_nexus() {
  local port="$1"; shift
  nexus_encryption_key="${bench_encryption_key:-$(head -c 32 /dev/urandom | base64)}"
  # Something already answering there would be measured instead of this Nexus.
  if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then echo "port $port is already in use; stop what listens there" >&2; return 1; fi
  nexus_data="$(mktemp -d /tmp/nexus-bench.XXXXXX)"
  nexus_api_key="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  env ASPNETCORE_ENVIRONMENT=Production ENCRYPTION_KEY="$nexus_encryption_key" API_KEY="$nexus_api_key" \
      BASE_URL="http://127.0.0.1:$port" Nexus__DataDirectory="$nexus_data" Logging__LogLevel__Default=Warning ${NEXUS_BENCH_ENV:-} "$@" \
      dotnet "$nexus_dll" --urls "http://127.0.0.1:$port" > "$nexus_data/server.log" 2>&1 &
  nexus_pid=$!
  # BENCH_START_SECONDS: how long to wait for /healthz (default 10; a machine busy with other work may need more).
  local deadline=$((SECONDS + ${BENCH_START_SECONDS:-10}))
  while [ "$SECONDS" -lt "$deadline" ]; do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$nexus_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$nexus_data/server.log"; return 1
}

# json_field NAME: the string value of NAME in the JSON on stdin (the admin API's answers hold each name once).
json_field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }

# bench_client PORT: creates an App Client (scopes read and write) on the Nexus started last at PORT (its
# nexus_api_key) and prints its HTTP Basic credentials, base64(client_id:client_secret).
bench_client() {
  local created
  created="$(curl -fs -X POST "http://127.0.0.1:$1/v1/admin/clients" -H "X-API-Key: $nexus_api_key" \
    -H 'Content-Type: application/json' -d '{"name":"bench","scopes":["read","write"]}')"
  printf '%s:%s' "$(json_field client_id <<<"$created")" "$(json_field client_secret <<<"$created")" | base64 -w0
}

# bench_token_lua BASIC BODY: a wrk script that posts BODY (a form) with HTTP Basic BASIC; prints its file name.
bench_token_lua() {
  local lua; lua="$(mktemp /tmp/nexus-bench-lua.XXXXXX)"
  cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = "$2"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $1"
LUA
  echo "$lua"
}

# bench_connect PORT FAKE_PORT: on the Nexus started last at PORT (its nexus_api_key; started with
# Nexus__AllowInsecureUpstreams=true and ALLOWED_RETURN_URLS=http://127.0.0.1:PORT), registers bench/tools/FakeProvider
# at FAKE_PORT, creates a gateway API key for workspace ws_bench and makes one connection active through the real
# handshake (request-connection, the provider's redirect, /auth/callback, code exchange). Sets connection_id, gateway_key.
bench_connect() {
  local base="http://127.0.0.1:$1" fake="http://127.0.0.1:$2" admin=(-H "X-API-Key: $nexus_api_key" -H 'Content-Type: application/json')
  curl -fs -X POST "$base/v1/providers" "${admin[@]}" -d "{\"name\":\"bench\",\"authorization_url\":\"$fake/authorize\",
    \"token_url\":\"$fake/token\",\"client_id\":\"bench-client\",\"client_secret\":\"bench-secret\",\"scopes\":[\"read\"],\"pkce\":true}" >/dev/null
  gateway_key="$(curl -fs -X POST "$base/v1/admin/api-keys" "${admin[@]}" -d '{"name":"bench","workspaces":["ws_bench"]}' | json_field api_key)"
  local requested auth_url callback returned
  requested="$(curl -fs -X POST "$base/v1/request-connection" -H "X-API-Key: $gateway_key" -H 'Content-Type: application/json' \
    -d "{\"workspace_id\":\"ws_bench\",\"provider_name\":\"bench\",\"return_url\":\"$base/connected\"}")"
  connection_id="$(json_field connection_id <<<"$requested")"
  auth_url="$(json_field auth_url <<<"$requested" | sed 's/\\u0026/\&/g')"
  callback="$(curl -fs -o /dev/null -w '%{redirect_url}' "$auth_url")"
  returned="$(curl -fs -o /dev/null -w '%{redirect_url}' "$callback")"
  case "$returned" in *status=active*) ;; *) echo "the connection did not become active: $returned" >&2; return 1 ;; esac
  curl -fs "$base/v1/token/$connection_id" -H "X-API-Key: $gateway_key" >/dev/null
}

# start_fake_provider PORT: builds bench/tools/FakeProvider (the upstream: OAuth endpoints that rotate refresh tokens,
# small JSON at /api/*), starts it on 127.0.0.1:PORT and waits until it answers. Sets fake_pid; the caller stops it.
start_fake_provider() {
  bench_build "$bench_root/bench/tools/FakeProvider" -c Release -nologo -v quiet >/dev/null
  if curl -fs "http://127.0.0.1:$1/healthz" >/dev/null 2>&1; then echo "port $1 is already in use; stop what listens there" >&2; return 1; fi
  "$(command -v dotnet)" "$bench_root/bench/tools/FakeProvider/bin/Release/net10.0/FakeProvider.dll" --urls "http://127.0.0.1:$1" >/dev/null 2>&1 &
  fake_pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "bench/tools/FakeProvider did not start on port $1" >&2; return 1
}

stop_nexus() {
  [ -n "${nexus_pid:-}" ] && kill "$nexus_pid" 2>/dev/null && wait "$nexus_pid" 2>/dev/null || true
  [ -n "${nexus_data:-}" ] && rm -rf "$nexus_data"
  nexus_pid=""
}

machine() {
  printf '%s, %s cores, %s RAM, %s' "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" \
    "$(free -h | awk '/Mem:/{print $2}')" "$(dotnet --version | sed 's/^/.NET SDK /')"
}

# wrk_summary FILE: "requests/s p50 p99" from wrk --latency output (latencies in ms).
wrk_summary() {
  awk '
    function ms(v) { if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 } if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 } if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 } return v }
    /Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { bad = $5 }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad + 0 }' "$1"
}

# Warm-up before each measurement (the issue's 5 s; shorter when the measurement itself is shorter, as in a smoke
# run), and the longer first warm-up a fresh Nexus needs to get past the JIT's tiering (20 s; BENCH_JIT_WARMUP).
bench_warmup() { local d="${1:-15}"; echo "${BENCH_WARMUP:-$(( d < 5 ? d : 5 ))}"; }
bench_jit_warmup() { local d="${1:-15}"; echo "${BENCH_JIT_WARMUP:-$(( d < 15 ? d : 20 ))}"; }

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# bench_measure PID SECONDS URL [LUA]: wrk -t2 -c32 for a warm-up (bench_warmup), then SECONDS with --latency.
# Prints "req/s p50 p99 non-2xx cpu [also]" (ms; cpu: the server process PID's CPU time per request, µs; also: the
# same for the processes bench_also_pids lists, when the calling script defines it).
bench_measure() {
  local pid="$1" seconds="$2" url="$3" lua="${4:-}" out before after requests
  out="$(mktemp)"
  wrk -t2 -c32 -d"$(bench_warmup "$seconds")s" ${lua:+-s "$lua"} "$url" >/dev/null
  local also_before="" also_ticks=0 p t
  # A script that defines bench_also_pids (e.g. PostgreSQL's processes) gets their CPU per request as a sixth column:
  # the CPU each of those processes used during the measurement (one that exited meanwhile is left out).
  declare -F bench_also_pids >/dev/null && also_before="$(for p in $(bench_also_pids); do echo "$p $(cpu_ticks "$p")"; done)"
  before="$(cpu_ticks "$pid")"
  wrk -t2 -c32 -d"${seconds}s" --latency ${lua:+-s "$lua"} "$url" > "$out"
  after="$(cpu_ticks "$pid")"
  while read -r p t; do
    if [ -n "$p" ] && [ -e "/proc/$p" ]; then also_ticks=$((also_ticks + $(cpu_ticks "$p") - t)); fi
  done <<<"$also_before"
  requests="$(awk '/requests in/ { print $1 }' "$out")"
  per_request() { awk -v t="$1" -v n="${requests:-0}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", (n > 0 ? t * 1e6 / hz / n : 0) }'; }
  printf '%s %s%s\n' "$(wrk_summary "$out")" "$(per_request $((after - before)))" \
    "$(declare -F bench_also_pids >/dev/null && echo " $(per_request "$also_ticks")")"
  rm -f "$out"
}

# The peer: node-oidc-provider in memory (bench/tools/oidc-provider-peer), installed with npm ci from its lock file.
# start_peer PORT sets peer_pid; stop_peer ends it. BENCH_PEERS=off skips the peer and the ceiling where a script
# offers that (client-credentials.sh, token-read.sh: a quicker run of Nexus alone).
peer_dir="$bench_root/bench/tools/oidc-provider-peer"
peer_secret="bench-peer-secret"
start_peer() {
  local port="$1"
  command -v node >/dev/null || need nodejs npm
  if [ ! -d "$peer_dir/node_modules/oidc-provider" ] || [ "$peer_dir/package-lock.json" -nt "$peer_dir/node_modules/.package-lock.json" ]; then
    (cd "$peer_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  if curl -fs "http://127.0.0.1:$port/jwks" >/dev/null 2>&1; then echo "port $port is already in use; stop what listens there" >&2; return 1; fi
  NODE_ENV=production PORT="$port" CLIENT_SECRET="$peer_secret" node "$peer_dir/server.js" >/dev/null 2>&1 &
  peer_pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/jwks" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "the oidc-provider peer did not start" >&2; return 1
}
stop_peer() {
  [ -n "${peer_pid:-}" ] && kill "$peer_pid" 2>/dev/null && wait "$peer_pid" 2>/dev/null || true
  peer_pid=""
}

# bench_median: the median of the numbers on stdin, one per line ("-" when there are none).
bench_median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else printf "%.6g\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# bench_round_ratio A B FILE: the median over the rounds of A's figure ÷ B's in the same round, from FILE's lines
# "who round figure ..." ("-" when no round has both). A drift of the machine between rounds reaches both alike.
bench_round_ratio() { awk -v a="$1" -v b="$2" '$1 == a { x[$2] = $3 } $1 == b { y[$2] = $3 } END { for (r in x) if (y[r] > 0) print x[r] / y[r] }' "$3" | bench_median; }

# BENCH_SUMMARY=FILE (set by bench/run-all.sh): scripts append one line per scenario for docs/benchmarks.md:
#   scenario|req/s|p50|p99|cpu µs|Nexus ÷ ceiling|Nexus ÷ peer|target|met, missed or —|why
summary_row() { [ -n "${BENCH_SUMMARY:-}" ] && (IFS='|'; echo "$*") >> "$BENCH_SUMMARY" || true; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "—" }'; }
# at_least VALUE TARGET: "met" or "missed"
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "—" && a + 0 >= b + 0) ? "met" : "missed" }'; }
