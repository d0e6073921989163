#!/usr/bin/env bash
# Runs every Nexus test suite: installs what is missing (PostgreSQL, Chromium), starts a throwaway PostgreSQL
# cluster, runs the .NET suites on SQLite and on PostgreSQL, stops the cluster, and ends with one line
# "N passed, N failed[, N skipped]". Browser screenshots land in artifacts/screenshots/{sqlite,postgres}/.
#
#   scripts/test.sh                 everything
#   NEXUS_TEST_ENGINES=sqlite scripts/test.sh    one engine only (sqlite | postgres | "sqlite postgres")
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
engines="${NEXUS_TEST_ENGINES:-sqlite postgres}"
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
if [ ! -x /usr/bin/chromium ] && [ -z "${NEXUS_CHROMIUM:-}" ]; then
  say "Installing Chromium"
  apt_install chromium || { echo "could not install Chromium"; exit 1; }
fi

# ---- build once -----------------------------------------------------------------------------------------
say "Building ($configuration)"
if ! dotnet build Nexus.slnx -c "$configuration" -nologo -v quiet > "$logs/build.log" 2>&1; then
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
  grep -E '\[FAIL\]' "$log" | sed 's/^/   /' || true
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

line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo
echo "$line"
[ "$failed" -eq 0 ]
