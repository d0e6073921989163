#!/usr/bin/env bash
# Refresh storm (issue: refresh engine). N connections whose access tokens all expire at the same instant, against a
# local upstream (bench/tools/FakeProvider, which rotates refresh tokens and counts any reuse). Nothing reads a
# credential: the background refresher alone must refresh all N before they expire. Reports refreshes/s during the
# storm and when the last connection was fresh. Target: >= 500 refreshes/s on 2 cores, N = 10,000 on PostgreSQL.
#
# The connections are made active through Nexus's real handshake (request-connection, the provider's redirect,
# /auth/callback) by bench/tools/RefreshStorm, which then watches the storm. Nexus runs with its default refresh
# settings (Nexus:Refresh:IntervalSeconds=5, BatchSize=200, Concurrency=16); the provider's refresh margin is 10 s.
#
# On PostgreSQL the storm also runs with several Nexus instances on the one database (issue #20: three instances,
# exactly one refresh per expiry, >= 1,500 refreshes/s together): the handshakes go through the first, and every
# instance runs its background refresher; the upstream counts each refresh token's uses, so a connection refreshed
# twice shows as a reused refresh token.
#   bench/refresh-storm.sh [connections] [engines] [instances]   defaults: 10000 "postgres sqlite" "1 3"
#   (instances: the PostgreSQL instance counts to run, one storm each; SQLite always runs one instance)
#   STORM_HANDSHAKE_RATE=20: on a busy machine, the handshakes a second the expiry budget assumes (default 150); the
#   result says expired_together=false when the handshakes were slower than that
#   STORM_WARMUP=1000: the connections of a first, uncounted storm on the same instances (0: none). Like the other
#   benchmarks' warm-up, it takes every instance's refresh path past the JIT's tiering, as a long-running instance's
#   is: without it the instances that took no handshake spent about 1.9 s of CPU each compiling during the storm.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
connections="${1:-10000}"
engines="${2:-postgres sqlite}"
instance_counts="${3:-1 3}"
need curl
build_nexus
bench_build "$bench_root/bench/tools/RefreshStorm" -c Release -nologo -v quiet >/dev/null
storm_dll="$bench_root/bench/tools/RefreshStorm/bin/Release/net10.0/RefreshStorm.dll"
port=18092
fake_port=18093

fake_pid=""
extra_pids=(); extra_datas=()
stop_extra() {
  for pid in "${extra_pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  for dir in "${extra_datas[@]}"; do rm -rf "$dir"; done
  extra_pids=(); extra_datas=()
}
cleanup() {
  stop_extra
  stop_nexus
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null || true
  pg_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_fake_provider "$fake_port"

field() { sed -E "s/.*\"$1\":\"?([^,\"}]*)\"?.*/\1/" <<<"$2"; }
rows=()
runs=()
for engine in $engines; do
  if [ "$engine" = postgres ]; then for k in $instance_counts; do runs+=("postgres $k"); done; else runs+=("$engine 1"); fi
done
for run in "${runs[@]}"; do
  read -r engine instances <<<"$run"
  extra=(Nexus__AllowInsecureUpstreams=true)
  if [ "$engine" = postgres ]; then start_pg; extra+=("DATABASE_URL=$pg_url"); fi
  # Instances on one database share the ENCRYPTION_KEY; each has its own API_KEY (only the first's is used).
  bench_encryption_key="$(head -c 32 /dev/urandom | base64)"
  for k in $(seq 2 "$instances"); do
    start_nexus $((port + 100 + k)) "${extra[@]}"
    extra_pids+=("$nexus_pid"); extra_datas+=("$nexus_data")
  done
  start_nexus "$port" "${extra[@]}"
  unset bench_encryption_key
  if [ "${STORM_WARMUP:-1000}" -gt 0 ]; then
    echo "== $engine, $instances instance(s): warm-up storm of ${STORM_WARMUP:-1000} connections (not counted)" >&2
    dotnet "$storm_dll" --nexus "http://127.0.0.1:$port" --api-key "$nexus_api_key" --fake "http://127.0.0.1:$fake_port" \
      --connections "${STORM_WARMUP:-1000}" --margin 10 --interval 5 --handshake-rate "${STORM_HANDSHAKE_RATE:-150}" >&2 || true
  fi
  echo "== $engine, $instances instance(s): $connections connections expiring together" >&2
  json="$(dotnet "$storm_dll" --nexus "http://127.0.0.1:$port" --api-key "$nexus_api_key" --fake "http://127.0.0.1:$fake_port" \
    --connections "$connections" --margin 10 --interval 5 --handshake-rate "${STORM_HANDSHAKE_RATE:-150}")"
  echo "$json" >&2
  rows+=("| $engine | $instances | $(field connections "$json") | $(field connect_seconds "$json") | $(field refreshes "$json") | $(field reused_refresh_tokens "$json") | $(field storm_seconds "$json") | **$(field refreshes_per_second "$json")** | $(field all_fresh_after_due_seconds "$json") | $(field all_fresh_before_expiry_seconds "$json") | $(field sampled_reads_fresh "$json") | $(field exactly_once "$json") | $(field expired_together "$json") |")
  for log in "$nexus_data/server.log" "${extra_datas[@]/%//server.log}"; do
    if grep -qiE "error|exception" "$log"; then echo "Nexus logged errors ($log):" >&2; grep -iE "error|exception" "$log" | head -20 >&2; fi
  done
  stop_extra
  stop_nexus
  if [ "$engine" = postgres ]; then pg_stop; fi
done

result="$(dirname "${BASH_SOURCE[0]}")/results/refresh-storm.md"
{
  echo "# Refresh storm"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine)"
  echo "- load: $connections connections made active through the real handshake, all access tokens expiring at the same instant;"
  echo "  no credential reads, so the background refresher alone refreshes them (Nexus:Refresh defaults: IntervalSeconds=5,"
  echo "  BatchSize=200, Concurrency=16; provider refresh_margin_seconds=10, so tokens are due 10 s before they expire and"
  echo "  the background refresher starts up to 5 s before that)"
  echo "- instances: Nexus processes on the one database, each running its background refresher (handshakes through the first)"
  echo "- warm-up: $( [ "${STORM_WARMUP:-1000}" -gt 0 ] && echo "a storm of ${STORM_WARMUP:-1000} connections on the same instances first, not counted (every instance's refresh path past the JIT's tiering, as a long-running instance's is)" || echo "none (STORM_WARMUP=0): the instances that took no handshake compile their refresh path during the storm")"
  echo "- load average: $(cut -d' ' -f1-3 /proc/loadavg) at the end (a shared machine makes absolute rates meaningless: retake them on an idle one)"
  echo "- upstream: bench/tools/FakeProvider on the same machine (single-use refresh tokens; a reuse would be counted and refused)"
  echo "- refreshes/s: refreshes divided by the time from the first to the last refresh at the upstream"
  echo "- exactly one refresh per expiry: refreshes at the upstream = connections and no refresh token used twice, counted"
  echo "  again two background intervals after the last connection was refreshed"
  echo "- all fresh: when the last connection held its new token, counted from the moment the tokens were due (negative: before),"
  echo "  and how long before the old tokens expired"
  echo
  echo "| engine | instances | connections | handshakes (s) | refreshes | reused refresh tokens | storm (s) | refreshes/s | all fresh after due (s) | all fresh before expiry (s) | sampled reads fresh | exactly one refresh per expiry | expired together |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$result"
echo
cat "$result"
