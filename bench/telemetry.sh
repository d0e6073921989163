#!/usr/bin/env bash
# The cost of telemetry (issue 18): client-credentials and token-read (SQLite) with telemetry off
# (Nexus__Telemetry__Enabled=false: nothing registered) and on (metrics with the Prometheus exporter, and every
# request traced: Nexus__Telemetry__Traces=true, spans recorded and redacted; no OTLP collector to send them to),
# alternating off/on runs so that drift of a shared machine hits both. Writes bench/results/telemetry.md and leaves
# the two benchmarks' own result files as they were.
#   bench/telemetry.sh [seconds] [rounds]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
duration="${1:-10}"
rounds="${2:-2}"
rows=()
for round in $(seq 1 "$rounds"); do
  for mode in off on; do
    if [ "$mode" = off ]; then export NEXUS_BENCH_ENV="Nexus__Telemetry__Enabled=false"; else export NEXUS_BENCH_ENV="Nexus__Telemetry__Traces=true"; fi
    cc="$(BENCH_PEERS=off "$here/client-credentials.sh" "$duration" | grep -E '^\| [0-9]' | tail -1)"
    tr="$("$here/token-read.sh" "$duration" sqlite | grep -E '^\| [0-9a-z]' | tail -1)"
    rows+=("| $round | $mode | client-credentials $cc")
    rows+=("| $round | $mode | token-read $tr")
  done
done
git -C "$here/.." checkout -- bench/results/client-credentials.md bench/results/token-read.md 2>/dev/null || true
{
  echo "# Telemetry on vs off"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- runs: ${duration} s each after the scripts' warm-up, alternating off/on, ${rounds} rounds"
  echo "- off: Nexus__Telemetry__Enabled=false; on: metrics + Prometheus exporter, every request traced (Nexus__Telemetry__Traces=true)"
  echo
  echo "Raw rows (columns as in client-credentials.md and token-read.md):"
  echo
  printf '%s\n' "${rows[@]}"
} > "$here/results/telemetry.md"
cat "$here/results/telemetry.md"
