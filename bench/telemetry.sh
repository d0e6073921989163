#!/usr/bin/env bash
# The cost of telemetry (issues 18 and 20): client-credentials and token-read (SQLite) with telemetry off
# (Nexus__Telemetry__Enabled=false: nothing registered), with metrics only (the default without an OTLP endpoint:
# metrics and the Prometheus exporter, no tracing registered) and traced (metrics, and every request traced:
# Nexus__Telemetry__Traces=true, spans recorded and redacted; no OTLP collector to send them to) and sampled (traced
# with the standard OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1: one request in ten), the modes
# alternating so that drift of a shared machine hits them all. Writes bench/results/telemetry.md, with each mode's
# throughput as a ratio to off in the same round, and leaves the two benchmarks' own result files as they were.
#   bench/telemetry.sh [seconds] [rounds]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
duration="${1:-10}"
rounds="${2:-2}"
rows=()
for round in $(seq 1 "$rounds"); do
  for mode in off metrics traced sampled; do
    case "$mode" in
      off) export NEXUS_BENCH_ENV="Nexus__Telemetry__Enabled=false" ;;
      metrics) export NEXUS_BENCH_ENV="Nexus__Telemetry__Traces=false" ;;
      traced) export NEXUS_BENCH_ENV="Nexus__Telemetry__Traces=true" ;;
      sampled) export NEXUS_BENCH_ENV="Nexus__Telemetry__Traces=true OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1" ;;
    esac
    cc="$(BENCH_PEERS=off "$here/client-credentials.sh" "$duration" | grep -E '^\| [0-9]' | tail -1)"
    tr="$(BENCH_PEERS=off "$here/token-read.sh" "$duration" sqlite | grep -E '^\| [0-9a-z]' | tail -1)"
    rows+=("| $round | $mode | client-credentials $cc")
    rows+=("| $round | $mode | token-read $tr")
  done
done
git -C "$here/.." checkout -- bench/results/client-credentials.md bench/results/token-read.md 2>/dev/null || true
{
  echo "# Telemetry: off, metrics only (the default), traced, traced with one request in ten sampled"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- runs: ${duration} s each after the scripts' warm-up, the modes alternating, ${rounds} rounds"
  echo "- off: Nexus__Telemetry__Enabled=false; metrics: the default (metrics + Prometheus exporter, no tracing registered); traced: metrics and every request traced (Nexus__Telemetry__Traces=true); sampled: traced, with OTEL_TRACES_SAMPLER=parentbased_traceidratio and OTEL_TRACES_SAMPLER_ARG=0.1 (one request in ten recorded)"
  echo
  echo "Throughput as a ratio to off in the same round (target: within 5%, i.e. at least 0.95):"
  echo
  echo "| round | benchmark | metrics ÷ off | traced ÷ off | sampled ÷ off |"
  echo "|---|---|---:|---:|---:|"
  printf '%s\n' "${rows[@]}" | awk -F'|' '{ b = $4; gsub(/ /, "", b); v = (b == "token-read") ? $6 : $5; gsub(/ /, "", v); mode = $3; gsub(/ /, "", mode); r = $2; gsub(/ /, "", r); x[r, b, mode] = v; if (!((r, b) in seen)) { seen[r, b] = 1; order[++n] = r SUBSEP b } }
    END { for (i = 1; i <= n; i++) { split(order[i], k, SUBSEP); o = x[k[1], k[2], "off"]; printf "| %s | %s | %.2f | %.2f | %.2f |\n", k[1], k[2], x[k[1], k[2], "metrics"] / o, x[k[1], k[2], "traced"] / o, x[k[1], k[2], "sampled"] / o } }'
  echo
  echo "Raw rows (columns as in client-credentials.md and token-read.md):"
  echo
  printf '%s\n' "${rows[@]}"
} > "$here/results/telemetry.md"
cat "$here/results/telemetry.md"
