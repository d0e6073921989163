#!/usr/bin/env bash
# sdks/go/test.sh: go vet and the unit tests of the Go SDK, then the SDK scenario (TestScenario) against a real Nexus
# through ../scenario/run.sh. Ends with exactly one line "N passed, N failed" (", N skipped" when some were; individual tests:
# subtests count, a test that only groups subtests does not); exits 0 iff nothing failed.
#
#   NEXUS_GO_SKIP_SCENARIO=1   unit tests only
#   GO=/path/to/go             the go command (default: go on PATH, else /usr/bin/go)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# Standard library only: no module proxy, no downloads.
export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local
go_cmd="${GO:-$(command -v go || echo /usr/bin/go)}"

passed=0 failed=0 skipped=0
summary() {
  if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
  [ "$failed" -eq 0 ]
  exit $?
}

if [ ! -x "$go_cmd" ]; then
  echo "test.sh: no go command (install golang-go)" >&2
  failed=1
  summary
fi

# count FILE EXCLUDE: add the leaf tests of a `go test -json` output to the totals (EXCLUDE: a test name to ignore).
count() {
  local counts
  counts="$(awk -v exclude="$2" '
    /"Action":"(pass|fail|skip)"/ && /"Test":"/ {
      match($0, /"Action":"[a-z]+"/); action = substr($0, RSTART + 10, RLENGTH - 11)
      match($0, /"Test":"[^"]*"/); name = substr($0, RSTART + 8, RLENGTH - 9)
      if (name == exclude) next
      result[name] = action; order[++n] = name
    }
    END {
      p = 0; f = 0; s = 0
      for (i = 1; i <= n; i++) {
        name = order[i]; parent = 0
        for (other in result) if (index(other, name "/") == 1) { parent = 1; break }
        if (parent) continue
        if (result[name] == "pass") p++; else if (result[name] == "fail") f++; else s++
      }
      print p, f, s
    }' "$1")"
  set -- $counts
  passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + $3))
}

# Print the output of the failing tests (the Output fields of their JSON lines) so that a failure can be read.
show_failures() {
  awk '
    /"Action":"fail"/ && /"Test":"/ { match($0, /"Test":"[^"]*"/); failed[substr($0, RSTART + 8, RLENGTH - 9)] = 1 }
    /"Action":"output"/ && /"Test":"/ { match($0, /"Test":"[^"]*"/); name = substr($0, RSTART + 8, RLENGTH - 9); out[++n] = name; line[n] = $0 }
    END {
      for (i = 1; i <= n; i++) if (out[i] in failed) {
        l = line[i]; sub(/.*"Output":"/, "", l); sub(/"}$/, "", l); gsub(/\\n/, "", l); gsub(/\\t/, "    ", l); gsub(/\\"/, "\"", l)
        print l
      }
    }' "$1" >&2
}

work="$(mktemp -d /tmp/sdk-go-test.XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "== go vet" >&2
if ! "$go_cmd" vet ./... >&2; then
  failed=$((failed + 1))
fi

echo "== unit tests" >&2
race=()
if command -v gcc > /dev/null 2>&1; then race=(-race); fi
"$go_cmd" test -json -count=1 "${race[@]}" ./... > "$work/unit.json" 2> "$work/unit.err"
rc=$?
before=$failed
count "$work/unit.json" TestScenario
show_failures "$work/unit.json"
if [ "$rc" -ne 0 ] && [ "$failed" -eq "$before" ]; then
  cat "$work/unit.err" >&2
  failed=$((failed + 1)) # a build failure or a crash outside any test
fi

if [ -z "${NEXUS_GO_SKIP_SCENARIO:-}" ]; then
  echo "== scenario (../scenario/run.sh)" >&2
  ../scenario/run.sh "$go_cmd" test -json -count=1 -run '^TestScenario$' . > "$work/scenario.json" 2> "$work/scenario.err"
  rc=$?
  before=$((passed + failed))
  count "$work/scenario.json" TestScenario
  show_failures "$work/scenario.json"
  grep -E '"Action":"(pass|fail|skip)","Package":"[^"]*","Test":"TestScenario/' "$work/scenario.json" \
    | sed -E 's/.*"Action":"([a-z]+)".*"Test":"TestScenario\/([^"]*)".*/  \1 \2/' >&2
  if [ "$rc" -ne 0 ] && [ $((passed + failed)) -eq "$before" ]; then
    cat "$work/scenario.err" >&2
    failed=$((failed + 1)) # run.sh could not start Nexus, or the build failed
  elif [ "$rc" -ne 0 ]; then
    cat "$work/scenario.err" >&2
  fi
fi

summary
