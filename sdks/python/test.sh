#!/usr/bin/env bash
# sdks/python/test.sh: the Python SDK's unit tests, then the SDK scenario against a real Nexus (../scenario/run.sh).
# Ends with exactly one line "N passed, N failed" (", N skipped" when some were skipped); exit 0 iff none failed.
# Uses Debian's /usr/bin/python3 (python3-requests and python3-httpx for the adapters), or $NEXUS_PYTHON.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
python="${NEXUS_PYTHON:-/usr/bin/python3}"
export PYTHONDONTWRITEBYTECODE=1 PYTHONWARNINGS=ignore::ResourceWarning

passed=0; failed=0; skipped=0
# add_counts LOG CODE: adds the RESULT line of a run; a run that printed none counts as one failure.
add_counts() {
  local line
  line="$(grep -E '^RESULT [0-9]+ [0-9]+ [0-9]+$' "$1" | tail -n 1)"
  if [ -z "$line" ]; then
    failed=$((failed + 1)); return
  fi
  set -- $line
  passed=$((passed + $2)); failed=$((failed + $3)); skipped=$((skipped + $4))
}

log="$(mktemp)"; trap 'rm -f "$log"' EXIT

echo "== Python SDK unit tests ($("$python" --version 2>&1))"
"$python" tests/run_tests.py unit 2>&1 | tee "$log" | grep -vE '^RESULT ' | grep -E '(FAIL|ERROR|skipped|^Ran |^OK|^FAILED)' || true
add_counts "$log"

if [ -f ../scenario.json ] && [ -x ../scenario/run.sh ]; then
  echo "== Python SDK scenario (../scenario/run.sh)"
  ../scenario/run.sh "$python" tests/run_tests.py scenario > "$log" 2>&1
  grep -vE '^RESULT ' "$log" | grep -E '(\.\.\. |^Ran |^OK|^FAILED|^run\.sh|Error|error:)' || true
  add_counts "$log"
else
  echo "== Python SDK scenario: sdks/scenario.json or sdks/scenario/run.sh missing, counted as 1 failed"
  failed=$((failed + 1))
fi

summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
