#!/usr/bin/env bash
# sdks/typescript/test.sh: the TypeScript SDK's suite. Installs the dev dependencies (npm ci) when node_modules is
# missing, builds (tsc), runs the unit tests (node --test on the compiled output), then the shared scenario against a
# fresh Nexus through ../scenario/run.sh. Ends with exactly one line "N passed, N failed[, N skipped]"; exits 0 iff
# nothing failed.
#
#   NEXUS_SDK_SKIP_SCENARIO=1 ./test.sh   unit tests only (no .NET build, no server)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

passed=0
failed=0
skipped=0

finish() {
  local line="$passed passed, $failed failed"
  [ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
  echo "$line"
  [ "$failed" -eq 0 ]
  exit $?
}

# add_counts LOG EXIT_CODE WHAT: adds the "# pass/fail/cancelled/skipped N" summary of a TAP run; a run that
# printed no summary (it could not start) counts as one failure.
add_counts() {
  local log="$1" code="$2" what="$3" p f c s
  p="$(grep -E '^# pass [0-9]+$' "$log" | tail -n1 | awk '{print $3}')"
  f="$(grep -E '^# fail [0-9]+$' "$log" | tail -n1 | awk '{print $3}')"
  c="$(grep -E '^# cancelled [0-9]+$' "$log" | tail -n1 | awk '{print $3}')"
  s="$(grep -E '^# skipped [0-9]+$' "$log" | tail -n1 | awk '{print $3}')"
  if [ -z "$p" ] || [ -z "$f" ]; then
    echo "test.sh: $what printed no test summary (exit $code)" >&2
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + p))
  failed=$((failed + f + ${c:-0}))
  skipped=$((skipped + ${s:-0}))
  if [ "$code" -ne 0 ] && [ "$((f + ${c:-0}))" -eq 0 ]; then
    echo "test.sh: $what exited $code without a failed test" >&2
    failed=$((failed + 1))
  fi
}

if [ ! -d node_modules ]; then
  echo "test.sh: npm ci" >&2
  if ! npm ci --no-audit --no-fund >&2; then
    echo "test.sh: npm ci failed" >&2
    failed=1
    finish
  fi
fi

rm -rf build dist
if ! npx --no-install tsc -p tsconfig.json || ! npx --no-install tsc -p tsconfig.test.json; then
  echo "test.sh: the build failed" >&2
  failed=1
  finish
fi

logs="$(mktemp -d /tmp/nexus-sdk-typescript.XXXXXX)"
trap 'rm -rf "$logs"' EXIT

unit_files=()
for file in build/test/*.test.js; do
  [ "$(basename "$file")" = "scenario.test.js" ] || unit_files+=("$file")
done
# Unit tests: NEXUS_SCENARIO unset so that nothing in them reaches for a real Nexus.
env -u NEXUS_SCENARIO node --test --test-reporter=tap "${unit_files[@]}" > "$logs/unit.tap" 2>&1
code=$?
cat "$logs/unit.tap"
add_counts "$logs/unit.tap" "$code" "the unit tests"

if [ -z "${NEXUS_SDK_SKIP_SCENARIO:-}" ]; then
  ../scenario/run.sh node --test --test-reporter=tap build/test/scenario.test.js > "$logs/scenario.tap" 2>&1
  code=$?
  cat "$logs/scenario.tap"
  add_counts "$logs/scenario.tap" "$code" "the scenario"
fi

finish
