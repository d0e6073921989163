#!/usr/bin/env bash
# Every benchmark in one go (issue #20): builds Release once, runs each script under bench/ (the Kestrel ceilings,
# the bare forwarder and the node-oidc-provider peer included) and the BenchmarkDotNet micro-benchmarks, and writes
# docs/benchmarks.md: date, machine, load average, per scenario req/s, p50, p99, server CPU µs per request (where
# measured), Nexus ÷ ceiling and Nexus ÷ peer, and each target with met / missed and why. Each script still writes
# its own bench/results/*.md, which docs/benchmarks.md includes in full.
#   bench/run-all.sh [seconds]     default 15 (after 5 s of warm-up per measurement), the issue's figures
#   bench/run-all.sh 3             a quick smoke run: every script with short measurements and small sizes; it
#                                  proves the scripts work, its figures mean little, and bench/results/ is restored
# Needs PostgreSQL binaries for the postgres rows (scripts/lib/pg.sh installs them) and wrk (installed if missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
source "$here/lib/common.sh"
duration="${1:-15}"
smoke=0; [ "$duration" -lt 15 ] && smoke=1
export BENCH_SUMMARY; BENCH_SUMMARY="$(mktemp /tmp/nexus-bench-summary.XXXXXX)"
logs="$(mktemp -d /tmp/nexus-bench-logs.XXXXXX)"
started="$(date -u +%Y-%m-%dT%H:%MZ)"
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "Building Release once" >&2
dotnet build "$root/src/Nexus.Server" -c Release -nologo -v quiet >/dev/null
for tool in "$here"/tools/*/*.csproj; do dotnet build "$tool" -c Release -nologo -v quiet >/dev/null; done
dotnet build "$here/micro/Nexus.Micro" -c Release -nologo -v quiet >/dev/null
export BENCH_BUILT=1

if [ "$smoke" = 1 ]; then
  connections=500; bridge_rounds=1; mcp_rounds=300; telemetry_args="$duration 1"; micro_job=dry; scale_connections=20000
  footprint_args="1 default r2r"
else
  connections=10000; bridge_rounds=3; mcp_rounds=3000; telemetry_args="5 10"; micro_job=short; scale_connections=1000000
  footprint_args="5"
fi
# Ports away from the scripts' defaults (18190…), which other work on a shared machine may hold.
# name|command: in this order; the micro-benchmarks last.
runs=(
  "telemetry|env PORT=18690 $here/telemetry.sh $telemetry_args"
  "client-credentials|$here/client-credentials.sh $duration"
  "footprint|env PORT=18590 $here/footprint.sh $footprint_args"
  "introspection|env PORT=18290 $here/introspection.sh $duration sqlite"
  "introspection-postgres|env PORT=18290 RESULT=introspection-postgres $here/introspection.sh $duration postgres"
  "token-read|$here/token-read.sh $duration"
  "bridge|$here/bridge.sh $duration $bridge_rounds"
  "mcp|env PORT=18390 $here/mcp.sh $duration $mcp_rounds"
  "refresh-storm|$here/refresh-storm.sh $connections"
  "scale|$here/scale.sh $scale_connections $duration"
  "sdk-dotnet|$here/sdk-dotnet.sh"
  "micro|$here/micro.sh --job $micro_job"
)
declare -A outcome
for entry in "${runs[@]}"; do
  name="${entry%%|*}"; command="${entry#*|}"
  echo "== $name: $command" >&2
  t0=$SECONDS
  if $command > "$logs/$name.log" 2>&1; then outcome[$name]="ok, $((SECONDS - t0)) s"
  else outcome[$name]="failed (exit $?), $((SECONDS - t0)) s: $(tail -3 "$logs/$name.log" | tr '\n' ' ' | cut -c1-300)"; fi
  echo "   ${outcome[$name]}" >&2
done

# Targets of the scripts that do not write summary rows themselves, read from their result files.
results="$here/results"
if [ -f "$results/token-read.md" ]; then
  while IFS='|' read -r _ engine reads p50 p99 _ hrps _ share krps kratio _; do
    engine="$(xargs <<<"$engine")"; reads="$(xargs <<<"$reads")"; p99="$(xargs <<<"$p99")"
    s="$(awk -v r="$reads" -v p="$p99" 'BEGIN { print (r >= 25000 && p < 5) ? "met" : "missed" }')"
    summary_row "GET /v1/token/{id} ($engine; issue: broker)" "$reads" "$(xargs <<<"$p50")" "$p99" "" "" "" "≥ 25,000 reads/s, p99 < 5 ms" "$s" \
      "$([ "$s" = met ] || echo "reads are $(xargs <<<"$share") of Nexus's own GET /healthz ($(xargs <<<"$hrps") req/s) in the same run")"
    kratio="$(xargs <<<"${kratio:-}" | tr -d 'x')"
    if [ -n "$kratio" ]; then
      ks="$(awk -v r="$kratio" -v e="$engine" 'BEGIN { print (r >= (e == "sqlite" ? 0.75 : 0.6)) ? "met" : "missed" }')"
      summary_row "GET /v1/token/{id} ($engine) vs the bare Kestrel GET (issue #20)" "$reads" "" "" "" "${kratio}×" "" "≥ 0.75× (SQLite), ≥ 0.6× (PostgreSQL) the Kestrel GET" "$ks" \
        "the bare Kestrel GET answered $(xargs <<<"$krps") req/s in the same run; Nexus's own GET /healthz $(xargs <<<"$hrps") ($(xargs <<<"$share") of it)"
    fi
  done < <(grep -E '^\| (sqlite|postgres) \|' "$results/token-read.md")
fi
if [ -f "$results/refresh-storm.md" ]; then
  while IFS='|' read -r _ engine instances n _ refreshes reused _ rate _; do
    rate="$(tr -d '* ' <<<"$rate")"; engine="$(xargs <<<"$engine")"; instances="$(xargs <<<"$instances")"
    target=500; [ "$instances" -gt 1 ] && target=1500
    s="$(awk -v r="$rate" -v t="$target" -v u="$(xargs <<<"$reused")" 'BEGIN { print (r >= t && u == 0) ? "met" : "missed" }')"
    [ "$engine" = postgres ] || s="— (target on PostgreSQL)"
    summary_row "refresh storm, $(xargs <<<"$n") connections ($engine, $instances instance(s))" "$rate refreshes/s" "" "" "" "" "" "≥ $target refreshes/s$([ "$instances" -gt 1 ] && echo " together, exactly one refresh per expiry"), N = 10,000 on PostgreSQL" "$s" \
      "$(xargs <<<"$refreshes") refreshes, $(xargs <<<"$reused") refresh tokens reused"
  done < <(grep -E '^\| (sqlite|postgres) \|' "$results/refresh-storm.md")
fi
if [ -f "$results/bridge.md" ]; then
  row() { grep -E "^\| $1 \| $2 " "$results/bridge.md" | head -1; }
  b="$(row shared 'through the Bridge')"; f="$(row shared 'through a bare forwarder')"
  if [ -n "$b" ] && [ -n "$f" ]; then
    br="$(cut -d'|' -f4 <<<"$b" | xargs)"; fr="$(cut -d'|' -f4 <<<"$f" | xargs)"
    # The median of the rounds' own ratios when the script wrote one, else the ratio of the median rounds.
    rk="$(grep -m1 -E '^- \*\*shared\*\*' "$results/bridge.md" | sed -nE 's/.*Bridge \/ bare forwarder \*\*([0-9.]+)\*\*.*/\1/p')"
    [ -n "$rk" ] || rk="$(ratio "$br" "$fr")"
    s="$(at_least "$rk" 0.95)"
    summary_row "Bridge, 32 connections (shared cores)" "$br" "$(cut -d'|' -f5 <<<"$b" | xargs)" "$(cut -d'|' -f6 <<<"$b" | xargs)" "$(cut -d'|' -f9 <<<"$b" | xargs)" "$rk (bare forwarder)" "" "≥ 0.95× a bare forwarder" "$s" \
      "$([ "$s" = met ] || grep -m1 -E '^- \*\*shared\*\*' "$results/bridge.md" | sed 's/^- //; s/\*//g')"
  fi
  one="$(grep -m1 -E '^- \*\*one connection\*\*' "$results/bridge.md" | sed -E 's/.*overhead \*\*([0-9.]+) ms\*\*.*/\1/')"
  if [ -n "$one" ]; then
    s="$(awk -v o="$one" 'BEGIN { print (o <= 0.15) ? "met" : "missed" }')"
    summary_row "Bridge, one call at a time: p50 overhead" "" "$one ms overhead" "" "" "" "" "≤ 0.15 ms" "$s" \
      "$([ "$s" = met ] || grep -m1 -E '^- \*\*one connection\*\*' "$results/bridge.md" | sed 's/^- //; s/\*//g')"
  fi
fi
if [ -f "$results/mcp.md" ]; then
  overhead="$(grep -m1 'call_api p50 overhead' "$results/mcp.md" | sed -E 's/.*: ([0-9.-]+) ms\*\*.*/\1/')"
  if [ -n "$overhead" ]; then
    s="$(awk -v o="$overhead" 'BEGIN { print (o <= 0.3) ? "met" : "missed" }')"
    summary_row "MCP call_api, one request at a time (issue #14)" "" "$overhead ms overhead" "" "" "" "" "p50 overhead over a direct Bridge call ≤ 0.3 ms" "$s" \
      "$([ "$s" = met ] || grep -m1 'call_api p50 overhead' "$results/mcp.md" | sed 's/^- //; s/\*//g')"
  fi
fi
summary_row ".NET SDK: apply a cached credential (issue #16)" "" "" "" "" "" "" "< 5 µs" "see below" "bench/results/sdk-dotnet.md"

cell() { [ -n "$1" ] && echo "$1" || echo "—"; }
out="$root/docs/benchmarks.md"
{
  echo "# Benchmarks"
  echo
  if [ "$smoke" = 1 ]; then
    echo "> **Smoke run** (\`bench/run-all.sh $duration\`): ${duration} s per measurement, small sizes ($connections connections in the"
    echo "> refresh storm, $mcp_rounds MCP rounds, BenchmarkDotNet \`--job $micro_job\`), on a machine shared with other work"
    echo "> (load average $load_start at the start). It proves that the scripts run; **its figures and met/missed verdicts"
    echo "> are not measurements**. Run \`bench/run-all.sh\` (15 s after 5 s of warm-up) on an idle machine for figures to quote."
    echo
  fi
  echo "Written by \`bench/run-all.sh $duration\` (every script under \`bench/\`, one Release build). The README's Benchmarks table"
  echo "is a summary of this page."
  echo
  echo "- date: $started – $(date -u +%H:%MZ)"
  echo "- machine: $(machine)"
  echo "- load average: $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "- build: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- src || echo ' with local changes in src/')"
  echo "- measurements: wrk -t2 -c32, ${duration} s after $(bench_warmup "$duration") s of warm-up (a fresh Nexus first $(bench_jit_warmup "$duration") s, past the JIT's tiering), client and servers sharing the machine"
  echo "- ceiling: bench/tools/BareKestrel (bare minimal API with the same endpoints); bare forwarder: bench/tools/BareForwarder;"
  echo "  peer: node-oidc-provider 9.13.3 in memory, one process (bench/tools/oidc-provider-peer)"
  echo "- server CPU: the server process's CPU time during the measurement ÷ requests answered (µs)"
  echo
  echo "## Summary and targets"
  echo
  echo "| scenario | req/s | p50 (ms) | p99 (ms) | server CPU µs/req | Nexus ÷ ceiling | Nexus ÷ peer | target | verdict | why |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|---|---|"
  while IFS='|' read -r scenario rps p50 p99 cpu rk rp target verdict why; do
    [ "$verdict" = met ] && verdict="**met**"; [ "$verdict" = missed ] && verdict="**missed**"
    echo "| $scenario | $(cell "$rps") | $(cell "$p50") | $(cell "$p99") | $(cell "$cpu") | $(cell "$rk") | $(cell "$rp") | $target | $verdict | $why |"
  done < "$BENCH_SUMMARY"
  echo
  echo "## Scripts"
  echo
  echo "| script | outcome |"
  echo "|---|---|"
  for entry in "${runs[@]}"; do name="${entry%%|*}"; echo "| \`${entry#*|}\` | ${outcome[$name]} |" | sed "s|$here/|bench/|g"; done
  for file in client-credentials footprint introspection introspection-postgres token-read bridge mcp refresh-storm scale telemetry sdk-dotnet micro; do
    [ -f "$results/$file.md" ] || continue
    echo
    echo "## bench/results/$file.md"
    echo
    # A script that failed left its previous (committed) results: not this run's figures.
    case "${outcome[$file]:-}" in failed*) echo "Not measured in this run (the script failed, see above)."; continue ;; esac
    sed -E 's/^# .*//; s/^(#+) /#\1 /' "$results/$file.md" | sed '1{/^$/d}'
  done
} > "$out"
rm -f "$BENCH_SUMMARY"

if [ "$smoke" = 1 ]; then
  # A smoke run's figures stay out of bench/results/ (they replace real measurements there otherwise).
  git -C "$root" checkout -- bench/results/ 2>/dev/null || true
  git -C "$root" ls-files --others --exclude-standard -- bench/results | sed "s|^|$root/|" | xargs -r rm -f
fi
echo "Logs: $logs" >&2
echo "Wrote $out" >&2
