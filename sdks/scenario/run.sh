#!/usr/bin/env bash
# sdks/scenario/run.sh CMD [ARGS...]
#
# Starts a fresh Nexus (the built server DLL, SQLite in a temporary data directory, a random bootstrap API_KEY, a
# free loopback port) and the scenario upstream (sdks/scenario/Upstream), exports
#   NEXUS_URL, NEXUS_ADMIN_API_KEY, NEXUS_SCENARIO_UPSTREAM, NEXUS_SCENARIO
# runs CMD with them, stops both, and exits with CMD's exit code. Builds the two projects (Release, like
# scripts/test.sh) when a DLL is missing or older than its sources. See sdks/scenario/README.md.
#
#   NEXUS_TEST_CONFIGURATION=Debug   use Debug builds instead
#   NEXUS_SCENARIO_KEEP_LOGS=1       keep the temporary directory (server logs) and print where it is
set -uo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: sdks/scenario/run.sh CMD [ARGS...]" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
configuration="${NEXUS_TEST_CONFIGURATION:-Release}"
server_project="$root/src/Nexus.Server"
upstream_project="$root/sdks/scenario/Upstream"
server_dll="$server_project/bin/$configuration/net10.0/Nexus.Server.dll"
upstream_dll="$upstream_project/bin/$configuration/net10.0/Nexus.Scenario.Upstream.dll"

# build_if_needed PROJECT_DIR DLL [MORE_SOURCE_DIRS...]: dotnet build when the DLL is missing or a source is newer.
build_if_needed() {
  local project="$1" dll="$2"; shift 2
  if [ -f "$dll" ] && [ -z "$(find "$project" "$@" \( -path '*/bin' -o -path '*/obj' -o -path '*/data' -o -path '*/node_modules' \) -prune -o -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.sql' \) -newer "$dll" -print -quit 2>/dev/null)" ]; then
    return 0
  fi
  echo "run.sh: building $(basename "$project") ($configuration)" >&2
  if ! dotnet build "$project" -c "$configuration" -nologo -v quiet > "$work/build-$(basename "$project").log" 2>&1; then
    grep -E "error" "$work/build-$(basename "$project").log" | sort -u | head -20 >&2
    echo "run.sh: build of $(basename "$project") failed" >&2
    return 1
  fi
}

# A TCP port on 127.0.0.1 that nothing listens on right now, taken below the kernel's ephemeral range: a port in that
# range can be the local end of some outgoing connection (a load generator opens thousands), which no listener shows
# but which makes the bind fail.
free_port() {
  local port low
  low="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
  [ "$low" -gt 11000 ] 2>/dev/null || low=32768
  for _ in $(seq 1 50); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

work="$(mktemp -d /tmp/nexus-scenario.XXXXXX)"
nexus_pid=""
upstream_pid=""
cleanup() {
  local pid
  for pid in "$nexus_pid" "$upstream_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  if [ -n "${NEXUS_SCENARIO_KEEP_LOGS:-}" ]; then
    echo "run.sh: logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_if_needed "$server_project" "$server_dll" "$root/src/Nexus.Sdk" || exit 1
build_if_needed "$upstream_project" "$upstream_dll" || exit 1

# ---- the scenario upstream: it picks its own port and prints its URL once it listens ----------------------
scenario="$root/sdks/scenario.json"
dotnet "$upstream_dll" --scenario "$scenario" > "$work/upstream.out" 2> "$work/upstream.log" &
upstream_pid=$!

# ---- Nexus ------------------------------------------------------------------------------------------------
admin_key="scenario-admin-$(random_hex 16)"
encryption_key="$(head -c 32 /dev/urandom | base64)"
mkdir -p "$work/data"
start_nexus() {
  port="$(free_port)" || { echo "run.sh: no free port" >&2; exit 1; }
  nexus_url="http://127.0.0.1:$port"
  # Test environment: plain http:// provider URLs on loopback are allowed (Nexus__AllowInsecureUpstreams).
  env -u DATABASE_URL ASPNETCORE_ENVIRONMENT=Test \
    BASE_URL="$nexus_url" API_KEY="$admin_key" ENCRYPTION_KEY="$encryption_key" \
    Nexus__DataDirectory="$work/data" Nexus__AllowInsecureUpstreams=true Logging__LogLevel__Default=Warning \
    dotnet "$server_dll" --urls "$nexus_url" > "$work/nexus.log" 2>&1 &
  nexus_pid=$!
}
start_nexus

upstream_url=""
for _ in $(seq 1 300); do
  if [ -z "$upstream_url" ]; then
    upstream_url="$(grep -m1 -E '^https?://' "$work/upstream.out" 2>/dev/null | tr -d '\r')"
  fi
  nexus_ready=""
  curl -fs "$nexus_url/healthz" >/dev/null 2>&1 && nexus_ready=1
  [ -n "$upstream_url" ] && [ -n "$nexus_ready" ] && break
  if ! kill -0 "$nexus_pid" 2>/dev/null && grep -q "address already in use" "$work/nexus.log" && [ "${bind_retries:=0}" -lt 3 ]; then
    # Another process took the port between the check and the bind: start again on another one.
    bind_retries=$((bind_retries + 1))
    start_nexus
    continue
  fi
  if ! kill -0 "$nexus_pid" 2>/dev/null || ! kill -0 "$upstream_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$upstream_url" ] || [ -z "$nexus_ready" ]; then
  echo "run.sh: Nexus or the scenario upstream did not start" >&2
  echo "--- nexus.log" >&2; tail -n 40 "$work/nexus.log" >&2
  echo "--- upstream.log" >&2; tail -n 40 "$work/upstream.log" >&2
  exit 1
fi

export NEXUS_URL="$nexus_url"
export NEXUS_ADMIN_API_KEY="$admin_key"
export NEXUS_SCENARIO_UPSTREAM="$upstream_url"
export NEXUS_SCENARIO="$scenario"
# The workspace key is the runner's to create (scenario step create_api_key); never inherit one from outside.
unset NEXUS_API_KEY

"$@"
code=$?
if [ "$code" -ne 0 ] && [ -n "${NEXUS_SCENARIO_SHOW_LOGS:-}" ]; then
  echo "--- nexus.log" >&2; tail -n 60 "$work/nexus.log" >&2
  echo "--- upstream.log" >&2; tail -n 60 "$work/upstream.log" >&2
fi
exit "$code"
