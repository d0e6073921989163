#!/usr/bin/env bash
# Runs every Nexus test suite: installs what is missing (PostgreSQL, Chromium, and what the SDK suites need), starts a
# throwaway PostgreSQL cluster, runs the .NET suites on SQLite and on PostgreSQL, stops the cluster, runs each SDK's
# sdks/<lang>/test.sh (Go, TypeScript, Python; each runs the shared scenario against a fresh Nexus through
# sdks/scenario/run.sh), and ends with one line "N passed, N failed[, N skipped]" adding up every suite.
# Browser screenshots land in artifacts/screenshots/{sqlite,postgres}/.
#
#   scripts/test.sh                 everything
#   NEXUS_TEST_ENGINES=sqlite scripts/test.sh    one engine only (sqlite | postgres | "sqlite postgres")
#   NEXUS_TEST_SKIP_SERVER=1 scripts/test.sh     skip the server suites (no PostgreSQL, no Chromium): the SDKs only
#   NEXUS_TEST_SDKS="go python" scripts/test.sh  only these SDK suites (go typescript python dotnet; default: all)
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
engines="${NEXUS_TEST_ENGINES:-sqlite postgres}"
skip_server="${NEXUS_TEST_SKIP_SERVER:-}"
[ -n "$skip_server" ] && [ "$skip_server" != 0 ] && engines="" || skip_server=""
sdks="${NEXUS_TEST_SDKS:-go typescript python dotnet}"
configuration="${NEXUS_TEST_CONFIGURATION:-Release}"
logs="$root/artifacts/test-logs"
rm -rf "$logs" "$root/artifacts/screenshots" && mkdir -p "$logs"

say() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq >/dev/null && apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# ---- what the suites need -------------------------------------------------------------------------------
source "$root/scripts/lib/pg.sh"
if [[ " $engines " == *" postgres "* ]] && ! pg_find; then
  say "Installing PostgreSQL"
  apt_install postgresql || { echo "could not install PostgreSQL"; exit 1; }
  pg_find || { echo "PostgreSQL binaries not found after install"; exit 1; }
fi

# The dashboard suites drive Debian's Chromium through Playwright (never a downloaded browser).
if [ -z "$skip_server" ] && [ ! -x /usr/bin/chromium ] && [ -z "${NEXUS_CHROMIUM:-}" ]; then
  say "Installing Chromium"
  apt_install chromium || { echo "could not install Chromium"; exit 1; }
fi

# The MCP conformance scenarios (tests/Nexus.Server.Tests/Mcp/McpConformanceTests.cs) drive the official npm package
# pinned in tests/conformance; they count in the server suites' totals. Without Node or the package they fail.
export NEXUS_TEST_REQUIRE_CONFORMANCE=1
if [ -z "$skip_server" ] && [ ! -d tests/conformance/node_modules/@modelcontextprotocol/conformance ]; then
  say "Installing the MCP conformance suite (npm ci)"
  if ! command -v npm >/dev/null; then apt_install nodejs npm || echo "could not install nodejs and npm"; fi
  (cd tests/conformance && npm ci --no-audit --no-fund) > "$logs/conformance-npm-ci.log" 2>&1 || { tail -n 20 "$logs/conformance-npm-ci.log"; echo "npm ci failed in tests/conformance"; }
fi
# The TypeScript MCP SDK client (tests/Nexus.Server.Tests/Mcp/McpTypeScriptClientTests.cs) is pinned in tests/mcp-client-ts;
# required the same way.
if [ -z "$skip_server" ] && [ ! -d tests/mcp-client-ts/node_modules/@modelcontextprotocol/sdk ]; then
  say "Installing the TypeScript MCP SDK client (npm ci)"
  if ! command -v npm >/dev/null; then apt_install nodejs npm || echo "could not install nodejs and npm"; fi
  (cd tests/mcp-client-ts && npm ci --no-audit --no-fund) > "$logs/mcp-client-ts-npm-ci.log" 2>&1 || { tail -n 20 "$logs/mcp-client-ts-npm-ci.log"; echo "npm ci failed in tests/mcp-client-ts"; }
fi

# ---- build once -----------------------------------------------------------------------------------------
say "Building ($configuration)"
# Without the server suites, only what the SDK suites need (the server, the scenario upstream, the .NET SDK tests).
build_targets=(Nexus.slnx)
[ -n "$skip_server" ] && build_targets=(src/Nexus.Server sdks/scenario/Upstream tests/Nexus.Sdk.Tests)
build_ok=1
for target in "${build_targets[@]}"; do
  dotnet build "$target" -c "$configuration" -nologo -v quiet >> "$logs/build.log" 2>&1 || build_ok=""
done
if [ -z "$build_ok" ]; then
  grep -E "error|Error" "$logs/build.log" | sort -u | head -40
  echo "0 passed, 1 failed"
  exit 1
fi

# ---- throwaway PostgreSQL cluster (scripts/lib/pg.sh) ----------------------------------------------------
trap pg_stop EXIT
start_pg() {
  # fsync off: the cluster is thrown away, durability buys nothing here.
  pg_start -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 || return 1
  export NEXUS_TEST_POSTGRES="$pg_url"
}

# ---- run suites -----------------------------------------------------------------------------------------
passed=0; failed=0; skipped=0
run_suite() { # name, command...
  local name="$1"; shift
  local log="$logs/$name.log"
  say "$name"
  "$@" > "$log" 2>&1
  local code=$?
  local summary
  summary="$(grep -E 'Total: [0-9]+, Errors: [0-9]+, Failed: [0-9]+, Skipped: [0-9]+' "$log" | tail -n 1)"
  if [ -z "$summary" ]; then
    tail -n 40 "$log"
    echo "   $name: no test summary (exit $code)"
    failed=$((failed + 1))
    return
  fi
  local total errors fails skips notrun
  total=$(sed -E 's/.*Total: ([0-9]+).*/\1/' <<<"$summary")
  errors=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$summary")
  fails=$(sed -E 's/.*Failed: ([0-9]+).*/\1/' <<<"$summary")
  skips=$(sed -E 's/.*Skipped: ([0-9]+).*/\1/' <<<"$summary")
  notrun=$(sed -E 's/.*Not Run: ([0-9]+).*/\1/' <<<"$summary")
  # Each failure with the first lines of its message (up to its stack trace), so a CI log says why, not only what.
  sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
    /\[FAIL\]/ { print; shown++; body = (shown <= 5) ? 8 : 0; next }
    body > 0 && /Stack Trace:|\[(PASS|SKIP)\]/ { body = 0 }
    body > 0 { print; body-- }' | sed 's/^/   /' || true
  passed=$((passed + total - fails - skips - notrun))
  failed=$((failed + fails + errors))
  skipped=$((skipped + skips + notrun))
  if [ "$code" -ne 0 ] && [ "$fails" -eq 0 ] && [ "$errors" -eq 0 ]; then failed=$((failed + 1)); fi
  echo "   $(sed -E 's/^[^A-Za-z]*//' <<<"$summary" | sed 's/\x1b\[[0-9;]*m//g')"
}

xunit() { # project name, extra env...
  local dll="tests/$1/bin/$configuration/net10.0/$1.dll"
  dotnet "$dll" -noColor -noLogo
}

for engine in $engines; do
  case "$engine" in
    sqlite)
      NEXUS_TEST_POSTGRES="" run_suite "server-sqlite" xunit Nexus.Server.Tests
      ;;
    postgres)
      if start_pg; then
        run_suite "server-postgres" xunit Nexus.Server.Tests
        pg_stop
      else
        echo "   could not start PostgreSQL"; failed=$((failed + 1))
      fi
      ;;
  esac
done

for project in tests/*/; do
  name="$(basename "$project")"
  # Suites that do not touch the database run once.
  [ "$name" = "Nexus.Server.Tests" ] && continue
  [ -f "tests/$name/bin/$configuration/net10.0/$name.dll" ] && run_suite "$name" xunit "$name"
done

# ---- the README's walkthroughs, run as a reader copies them (scripts/readme-check.py) ----------------------
if [ -z "$skip_server" ]; then
  command -v jq >/dev/null || { say "Installing jq"; apt_install jq || echo "could not install jq"; }
  readme_suite=1
fi

# ---- SDK suites (issue 16): sdks/<lang>/test.sh, each ending with "N passed, N failed[, N skipped]" --------------
# A suite whose tools cannot be installed, or that prints no such line, counts as one failure.
run_counted() { # name, command... (a suite that ends with "N passed, N failed[, N skipped]")
  local name="$1" log="$logs/$1.log"; shift
  say "$name"
  "$@" > "$log" 2>&1
  local code=$?
  local summary
  summary="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?[[:space:]]*$' | tail -n 1)"
  if [ -z "$summary" ]; then
    tail -n 40 "$log"
    echo "   $name: no \"N passed, N failed\" line (exit $code)"
    failed=$((failed + 1))
    return
  fi
  local p f s
  p=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+')
  f=$(grep -oE '[0-9]+ failed' <<<"$summary" | grep -oE '[0-9]+')
  s=$(grep -oE '[0-9]+ skipped' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
  if [ "$code" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "   $name: exit $code"; fi
  grep -E '^(FAIL|--- FAIL|not ok|✖)' "$log" | head -20 | sed 's/^/   /' || true
  echo "   $summary"
}
run_sdk() { # name
  run_counted "sdk-$1" bash -c "cd sdks/$1 && bash ./test.sh"
}

sdk_wanted() { [[ " $sdks " == *" $1 "* ]] && [ -f "sdks/$1/test.sh" ]; }

# .NET: its unit tests ran above with the other suites (the scenario cases skipped there); here the scenario cases
# run once more against a fresh Nexus and the scenario upstream.
if [[ " $sdks " == *" dotnet "* ]] && [ -f "tests/Nexus.Sdk.Tests/bin/$configuration/net10.0/Nexus.Sdk.Tests.dll" ]; then
  run_suite "sdk-dotnet-scenario" sdks/scenario/run.sh dotnet "tests/Nexus.Sdk.Tests/bin/$configuration/net10.0/Nexus.Sdk.Tests.dll" \
    -noColor -noLogo -class Nexus.Sdk.Tests.Scenario.ScenarioTests
fi
[ -n "${readme_suite:-}" ] && run_counted "readme" /usr/bin/python3 scripts/readme-check.py
# The Dockerfile against the repository (no image can be built here): copied paths, ENTRYPOINT = the published binary.
[ -z "$skip_server" ] && run_counted "dockerfile" /usr/bin/python3 scripts/check-dockerfile.py
# The official MCP conformance suite's client scenarios, Nexus being the client (issue 15): one test per scenario.
[ -z "$skip_server" ] && run_counted "mcp-client-conformance" env NEXUS_TEST_CONFIGURATION="$configuration" tests/conformance/client/run.sh
sdk_unavailable() { echo "   sdk-$1: $2"; failed=$((failed + 1)); }

if sdk_wanted go; then
  if command -v go >/dev/null || { say "Installing golang-go"; apt_install golang-go; }; then run_sdk go
  else sdk_unavailable go "could not install golang-go"; fi
fi

if sdk_wanted typescript; then
  if command -v npm >/dev/null || { say "Installing nodejs, npm"; apt_install nodejs npm; }; then
    if [ -f sdks/typescript/package-lock.json ] && ! (cd sdks/typescript && npm ci --no-audit --no-fund) > "$logs/sdk-typescript-npm-ci.log" 2>&1; then
      tail -n 20 "$logs/sdk-typescript-npm-ci.log"; sdk_unavailable typescript "npm ci failed"
    else
      run_sdk typescript
    fi
  else sdk_unavailable typescript "could not install nodejs and npm"; fi
fi

if sdk_wanted python; then
  # Debian's interpreter (the python3 first on PATH may be another one), with the adapters' libraries.
  if /usr/bin/python3 -c 'import requests, httpx' >/dev/null 2>&1 || { say "Installing python3-requests, python3-httpx"; apt_install python3 python3-requests python3-httpx; }; then
    run_sdk python
  else sdk_unavailable python "could not install python3-requests and python3-httpx"; fi
fi

line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo
echo "$line"
[ "$failed" -eq 0 ]
