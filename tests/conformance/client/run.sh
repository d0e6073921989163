#!/usr/bin/env bash
# tests/conformance/client/run.sh: the official MCP conformance suite's CLIENT scenarios, with Nexus as the client.
#
# Starts a fresh Nexus (the built server DLL, SQLite in a temporary directory, a random API_KEY, a free loopback port;
# legacy discovery on, its client ID metadata document URL set to the one the suite expects), runs
#   conformance client --command "/usr/bin/python3 driver.py" --suite all
# (driver.py registers each scenario's server with Nexus by URL, consents, and calls its tools through the Bridge),
# and ends with "N passed, N failed, N skipped", one test per scenario. Scenarios listed in expected-failures.yml
# (outside Nexus's design, each with its reason) count as skipped while they fail.
#
#   NEXUS_TEST_CONFIGURATION=Debug   use the Debug build (default Release, like scripts/test.sh)
#   CONFORMANCE_SUITE=auth           another suite of the CLI (default all)
#   CONFORMANCE_KEEP_LOGS=1          keep the temporary directory (Nexus's log, the suite's results)
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
configuration="${NEXUS_TEST_CONFIGURATION:-Release}"
server_dll="$root/src/Nexus.Server/bin/$configuration/net10.0/Nexus.Server.dll"
cli="$root/tests/conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js"
shim="$root/../shared/tools/node20-globsync/register.mjs"

[ -f "$server_dll" ] || { echo "run.sh: $server_dll is missing (dotnet build src/Nexus.Server -c $configuration)"; echo "0 passed, 1 failed"; exit 1; }
[ -f "$cli" ] || { echo "run.sh: the conformance package is missing (npm ci in tests/conformance)"; echo "0 passed, 1 failed"; exit 1; }

# Below the kernel's ephemeral range: a port there can be the local end of an outgoing connection, which makes a bind fail.
free_port() {
  local port low
  low="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
  [ "$low" -gt 11000 ] 2>/dev/null || low=32768
  for _ in $(seq 1 50); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  return 1
}

work="$(mktemp -d /tmp/nexus-mcp-client-conformance.XXXXXX)"
nexus_pid=""
cleanup() {
  if [ -n "$nexus_pid" ] && kill -0 "$nexus_pid" 2>/dev/null; then
    kill "$nexus_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$nexus_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$nexus_pid" 2>/dev/null || true
  fi
  if [ -n "${CONFORMANCE_KEEP_LOGS:-}" ]; then echo "run.sh: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$(free_port)" || { echo "run.sh: no free port"; echo "0 passed, 1 failed"; exit 1; }
nexus_url="http://127.0.0.1:$port"
admin_key="conformance-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$work/data"
# The scenario servers listen on http://localhost:<port>: plain http on loopback needs Nexus__AllowInsecureUpstreams.
# auth/basic-cimd expects the client_id https://conformance-test.local/client-metadata.json (a deployment that
# publishes its document elsewhere sets the same setting); the 2025-03-26 scenarios need legacy discovery. The CLI
# runs every scenario at once (26 servers, 26 drivers): on a busy 2-core machine a metadata request may wait long,
# hence the generous time limits (they bound a hang, not the normal run of about a minute).
env -u DATABASE_URL ASPNETCORE_ENVIRONMENT=Test \
  BASE_URL="$nexus_url" API_KEY="$admin_key" ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
  ALLOWED_RETURN_URLS="https://app.example.test/" \
  Nexus__DataDirectory="$work/data" Nexus__AllowInsecureUpstreams=true \
  Nexus__Mcp__AllowLegacyDiscovery=true Nexus__Mcp__ClientMetadataDocumentUrl="https://conformance-test.local/client-metadata.json" \
  Nexus__Mcp__MetadataTimeoutSeconds=40 Logging__LogLevel__Default=Warning \
  dotnet "$server_dll" --urls "$nexus_url" > "$work/nexus.log" 2>&1 &
nexus_pid=$!
for _ in $(seq 1 300); do
  curl -fs "$nexus_url/healthz" >/dev/null 2>&1 && break
  kill -0 "$nexus_pid" 2>/dev/null || break
  sleep 0.1
done
if ! curl -fs "$nexus_url/healthz" >/dev/null 2>&1; then
  echo "run.sh: Nexus did not start"; tail -n 40 "$work/nexus.log"; echo "0 passed, 1 failed"; exit 1
fi

node_args=()
[ -f "$shim" ] && node_args=(--import "$(cd "$(dirname "$shim")" && pwd)/register.mjs")
export NEXUS_URL="$nexus_url" NEXUS_ADMIN_API_KEY="$admin_key" NEXUS_CONFORMANCE_RETURN_URL="https://app.example.test/return"
(cd "$work" && node "${node_args[@]}" "$cli" client --command "/usr/bin/python3 $here/driver.py" \
  --suite "${CONFORMANCE_SUITE:-all}" --timeout 90000 --verbose -o "$work/results") > "$work/suite.log" 2>&1
grep -E '^(✓|✗) [^ ]+: ' "$work/suite.log"

# One test per scenario: the CLI's summary lines "✓|✗ <scenario>: N passed, N failed[, N warnings]".
expected="$(sed -nE 's/^[[:space:]]*-[[:space:]]*([^#[:space:]]+).*/\1/p' "$here/expected-failures.yml")"
passed=0; failed=0; skipped=0
while IFS= read -r line; do
  mark="${line%% *}"; rest="${line#* }"; scenario="${rest%%:*}"
  known=""; grep -qxF "$scenario" <<<"$expected" && known=1
  if [ "$mark" = "✓" ]; then
    if [ -n "$known" ]; then failed=$((failed + 1)); echo "FAIL $scenario passes now: remove it from expected-failures.yml"
    else passed=$((passed + 1)); fi
  elif [ -n "$known" ]; then skipped=$((skipped + 1))
  else failed=$((failed + 1)); echo "FAIL $scenario: $rest"
  fi
done < <(grep -E '^(✓|✗) [^ ]+: [0-9]+ passed, [0-9]+ failed' "$work/suite.log")
if [ $((passed + failed + skipped)) -eq 0 ]; then
  tail -n 40 "$work/suite.log"; failed=1
fi
if [ "$failed" -gt 0 ]; then
  echo "--- drivers (stderr)"; grep -E '^\[driver ' "$work/suite.log" | tail -n 60
  echo "--- nexus.log"; tail -n 40 "$work/nexus.log"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
