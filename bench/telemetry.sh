#!/usr/bin/env bash
# The cost of telemetry (issues 18 and 20; target: each figure within 5% of telemetry off). Four Nexus instances run
# side by side on SQLite, one per mode:
#   off      Nexus__Telemetry__Enabled=false: nothing registered
#   metrics  the default without an OTLP endpoint: metrics and the Prometheus exporter, no tracing registered
#   traced   metrics, and every request traced (Nexus__Telemetry__Traces=true: spans recorded and redacted; no OTLP
#            collector to send them to)
#   sampled  traced with the standard OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1
#            (one request in ten recorded)
# Each gets an App Client and a connection made active through the real handshake (bench/tools/FakeProvider), and a
# warm-up past the JIT's tiering (20 s; in a smoke run of a few seconds, three measurements long). Then, round after
# round, each instance in turn (the order rotating every round) takes SECONDS of client-credentials token requests and
# of GET /v1/token/{id} credential reads (wrk -t2 -c32, after BENCH_WARMUP=1 s), while the others idle. Every instance
# is measured in every round, minutes apart at most, so a drift of the shared machine (it moved single 15 s runs by
# ±15% before this design) reaches all modes alike; the ratio to off is taken within each round and the median over
# the rounds is reported, for throughput and for the server's CPU time per request (from /proc, the steadier figure
# when the machine's speed moves).
#   bench/telemetry.sh [seconds] [rounds]      defaults: 5 10
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-5}"
rounds="${2:-10}"
need wrk curl
build_nexus
base_port="${PORT:-18690}"
fake_port=$((base_port + 9))
modes=(off metrics traced sampled)
declare -A pid data port_of read_url read_lua token_lua
fake_pid=""
cleanup() {
  for mode in "${modes[@]}"; do
    [ -n "${pid[$mode]:-}" ] && kill "${pid[$mode]}" 2>/dev/null && wait "${pid[$mode]}" 2>/dev/null || true
    [ -n "${data[$mode]:-}" ] && rm -rf "${data[$mode]}"
    rm -f "${read_lua[$mode]:-}" "${token_lua[$mode]:-}"
  done
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_fake_provider "$fake_port"

i=0
for mode in "${modes[@]}"; do
  case "$mode" in
    off) settings=(Nexus__Telemetry__Enabled=false) ;;
    metrics) settings=(Nexus__Telemetry__Traces=false) ;;
    traced) settings=(Nexus__Telemetry__Traces=true) ;;
    sampled) settings=(Nexus__Telemetry__Traces=true OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1) ;;
  esac
  p=$((base_port + i)); i=$((i + 1))
  start_nexus "$p" Nexus__AllowInsecureUpstreams=true "ALLOWED_RETURN_URLS=http://127.0.0.1:$p" "${settings[@]}"
  pid[$mode]="$nexus_pid"; data[$mode]="$nexus_data"; port_of[$mode]="$p"
  token_lua[$mode]="$(bench_token_lua "$(bench_client "$p")" "grant_type=client_credentials&scope=read")"
  bench_connect "$p" "$fake_port"
  read_url[$mode]="http://127.0.0.1:$p/v1/token/$connection_id"
  read_lua[$mode]="$(mktemp /tmp/nexus-bench-lua.XXXXXX)"
  printf 'wrk.headers["X-API-Key"] = "%s"\n' "$gateway_key" > "${read_lua[$mode]}"
  echo "== $mode on port $p: warm-up past the JIT's tiering" >&2
  wrk -t2 -c32 -d"$(bench_jit_warmup $((duration * 3)))s" -s "${token_lua[$mode]}" "http://127.0.0.1:$p/oauth2/token" >/dev/null
  wrk -t2 -c32 -d"$(bench_jit_warmup $((duration * 3)))s" -s "${read_lua[$mode]}" "${read_url[$mode]}" >/dev/null
done

# raw: one line per measurement, "round mode benchmark req/s p50 p99 non-2xx cpu-µs/request"
raw="$(mktemp)"
for round in $(seq 1 "$rounds"); do
  for k in 0 1 2 3; do
    mode="${modes[$(( (round - 1 + k) % 4 ))]}"
    p="${port_of[$mode]}"
    cc="$(BENCH_WARMUP="${BENCH_WARMUP:-1}" bench_measure "${pid[$mode]}" "$duration" "http://127.0.0.1:$p/oauth2/token" "${token_lua[$mode]}")"
    tr="$(BENCH_WARMUP="${BENCH_WARMUP:-1}" bench_measure "${pid[$mode]}" "$duration" "${read_url[$mode]}" "${read_lua[$mode]}")"
    echo "$round $mode client-credentials $cc" >> "$raw"
    echo "$round $mode token-read $tr" >> "$raw"
    echo "   round $round $mode: client credentials $cc; token reads $tr" >&2
  done
done

# Per benchmark and mode: the median over the rounds of (mode ÷ off in the same round), for req/s and CPU µs/request.
medians="$(awk '
  { rps[$1, $2, $3] = $4; cpu[$1, $2, $3] = $8; if ($1 > n) n = $1 }
  function median(a, m,   i, j, t) { for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
  END {
    split("client-credentials token-read", benches, " "); split("metrics traced sampled", ms, " ")
    for (b = 1; b <= 2; b++) {
      split("", offr); split("", offc)
      for (r = 1; r <= n; r++) { offr[r] = rps[r, "off", benches[b]]; offc[r] = cpu[r, "off", benches[b]] }
      line = benches[b] " " sprintf("%.0f %.0f", median(offr, n), median(offc, n))
      for (k = 1; k <= 3; k++) {
        split("", x); split("", y)
        for (r = 1; r <= n; r++) { x[r] = rps[r, ms[k], benches[b]] / rps[r, "off", benches[b]]; y[r] = cpu[r, ms[k], benches[b]] / cpu[r, "off", benches[b]] }
        line = line " " sprintf("%.2f %.2f", median(x, n), median(y, n))
      }
      print line
    }
  }' "$raw")"

result="$bench_root/bench/results/telemetry.md"
{
  echo "# Telemetry: off, metrics only (the default), every request traced, one request in ten traced"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- instances: four Nexus processes on SQLite side by side, one per mode, each warmed up past the JIT's tiering; each round measures every instance in turn (the order rotating) while the others idle"
  echo "- load: per instance and round, wrk -t2 -c32 for ${duration} s after ${BENCH_WARMUP:-1} s, on POST /oauth2/token (client credentials, ES256) and on GET /v1/token/{id} (a gateway key, one active connection); ${rounds} rounds"
  echo "- off: Nexus__Telemetry__Enabled=false; metrics: the default (metrics + Prometheus exporter, no tracing registered); traced: metrics and every request traced (Nexus__Telemetry__Traces=true; no OTLP collector); sampled: traced, with OTEL_TRACES_SAMPLER=parentbased_traceidratio and OTEL_TRACES_SAMPLER_ARG=0.1"
  echo "- CPU: the server process's CPU time (/proc) during the measurement ÷ requests answered"
  echo
  echo "Median over the rounds of each mode's figure ÷ off's in the same round (target: throughput within 5% of off, i.e. ≥ 0.95):"
  echo
  echo "| benchmark | off req/s (median) | off CPU µs/request | metrics: req/s ÷ off | metrics: CPU ÷ off | traced: req/s ÷ off | traced: CPU ÷ off | sampled: req/s ÷ off | sampled: CPU ÷ off |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  while read -r b orps ocpu mr mc tr tc sr sc; do
    echo "| $b | $orps | $ocpu | **$mr** | $mc | **$tr** | $tc | **$sr** | $sc |"
  done <<<"$medians"
  echo
  echo "Every measurement (round, mode, benchmark, req/s, p50 ms, p99 ms, non-2xx, server CPU µs/request):"
  echo
  echo '```'
  cat "$raw"
  echo '```'
} > "$result"
rm -f "$raw"
cat "$result"

# For bench/run-all.sh (docs/benchmarks.md): one row per mode, met when both benchmarks keep 95% of off's throughput.
while read -r mode column; do
  worst="$(awk -v c="$column" '{ v = $(c); if (min == "" || v < min) min = v } END { printf "%.2f", min }' <<<"$medians")"
  summary_row "telemetry $mode vs off: lower of client credentials and token reads (issue #18/#20)" "" "" "" "" "$worst" "" \
    "≥ 0.95× telemetry off's throughput" "$(at_least "$worst" 0.95)" "median of $rounds alternating rounds; bench/results/telemetry.md"
done <<<"metrics 4
traced 6
sampled 8"
