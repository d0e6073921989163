#!/usr/bin/env bash
# Bridge overhead (issue: non-OAuth credentials and the Bridge). Target: p50 overhead under 1 ms and throughput at
# least 0.6x calling the upstream directly, wrk -c32, both paths in one run, everything on this machine (SQLite).
#
# Two layouts, because on one small machine the load generator, the Bridge and the upstream all compete for the
# same cores, and a proxied request then pays for the upstream's work and the load generator's on top of its own:
#   shared    every process may use every core (the machine as it is);
#   separate  the proxy has core 1 to itself; wrk and the upstream share core 0 in every run, so the direct and the
#             proxied path get the same CPU for everything but the proxy, as when the Bridge runs on its own host.
# Beside the Bridge, bench/tools/BareForwarder (Kestrel in, HttpMessageInvoker out, the headers passed both ways less
# the hop-by-hop ones, nothing else) shows the floor that any correct ASP.NET Core proxy pays on this machine, so the
# Bridge's own share of the overhead can be read off.
# Each path is measured in alternating rounds after a warm-up past the JIT's tiering; the round with the median
# throughput is reported, with the median of the rounds' own Bridge ÷ floor ratios (the figure the target is judged on).
# CPU time per request per process says where the time goes.
#   bench/bridge.sh [seconds per round] [rounds]
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
duration="${1:-10}"
rounds="${2:-3}"
need wrk curl # taskset: util-linux, on every Debian
build_nexus
bench_build "$bench_root/bench/tools/BareForwarder" -c Release -nologo -v quiet >/dev/null
bare_dll="$bench_root/bench/tools/BareForwarder/bin/Release/net10.0/BareForwarder.dll"
port=18090
fake_port=18092
bare_port=18094
fake_pid=""
bare_pid=""
cleanup() {
  stop_nexus
  for pid in "$fake_pid" "$bare_pid"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  return 0
}
trap cleanup EXIT

start_fake_provider "$fake_port"
# The floor: what any ASP.NET Core forwarder pays on this machine (bench/tools/BareForwarder), measured like the Bridge.
"$(command -v dotnet)" "$bare_dll" --urls "http://127.0.0.1:$bare_port" --upstream "http://127.0.0.1:$fake_port/api/" >/dev/null 2>&1 &
bare_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$bare_port/items" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$bare_port/items" >/dev/null || { echo "the bare forwarder does not answer 200" >&2; exit 1; }
start_nexus "$port" Nexus__AllowInsecureUpstreams=true

base="http://127.0.0.1:$port"
admin=(-H "X-API-Key: $nexus_api_key" -H 'Content-Type: application/json')
curl -fs -X POST "$base/v1/providers" "${admin[@]}" -d "{\"name\":\"api\",\"auth_mode\":\"api_key\",\"api_base_url\":\"http://127.0.0.1:$fake_port/api\",
  \"api_key\":{\"in\":\"header\",\"name\":\"Authorization\",\"prefix\":\"Bearer \"}}" >/dev/null
key="$(curl -fs -X POST "$base/v1/admin/api-keys" "${admin[@]}" -d '{"name":"agent","workspaces":["ws"],"can_read_credentials":false}' | sed -E 's/.*"api_key":"([^"]+)".*/\1/')"
connection_id="$(curl -fs -X POST "$base/v1/request-connection" "${admin[@]}" -d "{\"workspace_id\":\"ws\",\"provider_name\":\"api\",\"return_url\":\"$base/\"}" | sed -E 's/.*"connection_id":"([^"]+)".*/\1/')"
curl -fs -X POST "$base/v1/connections/$connection_id/credentials" "${admin[@]}" -d '{"api_key":"sk-bench"}' >/dev/null

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; } # user + system, in clock ticks
pin() { # cpus pid: every thread of the process
  taskset -apc "$1" "$2" >/dev/null
}
measure() { # cpus seconds url proxy_pid [lua] -> "rps p50 p99 non2xx cpu_us_per_request(wrk proxy upstream)"
  local cpus="$1" seconds="$2" url="$3" proxy="$4" lua="${5:-}" out times
  out="$(mktemp)"; times="$(mktemp)"
  local n0 f0; n0="$(cpu_ticks "$proxy")"; f0="$(cpu_ticks "$fake_pid")"
  local TIMEFORMAT='%U %S'
  { time taskset -c "$cpus" wrk -t"${threads:-2}" -c"${connections:-32}" -d"${seconds}s" --latency ${lua:+-s "$lua"} "$url" > "$out"; } 2> "$times"
  local n1 f1; n1="$(cpu_ticks "$proxy")"; f1="$(cpu_ticks "$fake_pid")"
  local summary requests; summary="$(wrk_summary "$out")"
  requests="$(awk '/requests in/ { print $1 }' "$out")"
  echo "$summary $(awk -v r="$requests" -v t="$(getconf CLK_TCK)" -v n="$((n1 - n0))" -v f="$((f1 - f0))" -v w="$(cat "$times")" \
    'BEGIN { split(w, a, " "); printf "%.1f %.1f %.1f", (a[1] + a[2]) * 1e6 / r, n * 1e6 / t / r, f * 1e6 / t / r }')"
  rm -f "$out" "$times"
}
median() { sort -n -k1,1 | awk '{ line[NR] = $0 } END { print line[int((NR + 1) / 2)] }'; }

lua="$(mktemp /tmp/nexus-bench-lua.XXXXXX)"
printf 'wrk.headers["X-API-Key"] = "%s"\n' "$key" > "$lua"
direct_url="http://127.0.0.1:$fake_port/api/items"
bridge_url="$base/v1/bridge/$connection_id/items"
bare_url="http://127.0.0.1:$bare_port/items"
rows=""
summary=""
layout() { # name, cpus for wrk and the upstream, cpus for the proxy (Nexus or the bare forwarder)
  local name="$1" outer="$2" inner="$3" d b f
  pin "$outer" "$fake_pid"; pin "$inner" "$nexus_pid"; pin "$inner" "$bare_pid"
  echo "== $name: warm-up" >&2
  measure "$outer" "$(bench_warmup "$duration")" "$direct_url" "$nexus_pid" >/dev/null
  measure "$outer" "$(bench_jit_warmup "$duration")" "$bridge_url" "$nexus_pid" "$lua" >/dev/null
  measure "$outer" "$(bench_warmup "$duration")" "$bare_url" "$bare_pid" >/dev/null
  d="$(mktemp)"; b="$(mktemp)"; f="$(mktemp)"
  for round in $(seq 1 "$rounds"); do
    measure "$outer" "$duration" "$direct_url" "$nexus_pid" | tee -a "$d" | sed "s/^/$name round $round direct: /" >&2
    measure "$outer" "$duration" "$bridge_url" "$nexus_pid" "$lua" | tee -a "$b" | sed "s/^/$name round $round bridge: /" >&2
    measure "$outer" "$duration" "$bare_url" "$bare_pid" | tee -a "$f" | sed "s/^/$name round $round bare forwarder: /" >&2
  done
  local drps dp50 dp99 dbad dcw dcn dcf brps bp50 bp99 bbad bcw bcn bcf frps fp50 fp99 fbad fcw fcn fcf
  read -r drps dp50 dp99 dbad dcw dcn dcf <<<"$(median < "$d")"
  read -r brps bp50 bp99 bbad bcw bcn bcf <<<"$(median < "$b")"
  read -r frps fp50 fp99 fbad fcw fcn fcf <<<"$(median < "$f")"
  # The rounds' own ratios: each round measures the Bridge and the floor minutes apart at most, so a drift of the
  # shared machine between rounds (±10% per run here) reaches both; their median is the figure to judge.
  local own rmed
  own="$(paste -d' ' "$b" "$f" | awk '{ printf "%.2f\n", $1 / $8 }')"
  rmed="$(bench_median <<<"$own" | awk '{ printf "%.2f", $1 }')"
  rm -f "$d" "$b" "$f"
  rows+="| $name | direct to the upstream | $drps | $dp50 | $dp99 | $dbad | $dcw | - | $dcf |"$'\n'
  rows+="| $name | through the Bridge | $brps | $bp50 | $bp99 | $bbad | $bcw | $bcn | $bcf |"$'\n'
  rows+="| $name | through a bare forwarder (floor) | $frps | $fp50 | $fp99 | $fbad | $fcw | $fcn | $fcf |"$'\n'
  summary+="- **$name**: Bridge / direct throughput **$(awk -v a="$brps" -v b="$drps" 'BEGIN { printf "%.2f", a / b }')** (bare forwarder / direct $(awk -v a="$frps" -v b="$drps" 'BEGIN { printf "%.2f", a / b }')), p50 overhead **$(awk -v a="$bp50" -v b="$dp50" 'BEGIN { printf "%.2f", a - b }') ms** (bare forwarder $(awk -v a="$fp50" -v b="$dp50" 'BEGIN { printf "%.2f", a - b }') ms); Bridge / bare forwarder **$rmed**, the median of the rounds' own ratios ($(paste -sd, <<<"$own" | sed 's/,/, /g'))"$'\n'
}
layout shared 0-1 0-1
layout separate 0 1

# Under 32 connections every path runs at saturation, where p50 is mostly queueing (about 32 / throughput). One
# connection at a time shows the latency a single call gains through the proxy, with nothing queued.
pin 0-1 "$fake_pid"; pin 0-1 "$nexus_pid"; pin 0-1 "$bare_pid"
single=""
for path in "direct to the upstream|$direct_url|$nexus_pid|" "through the Bridge|$bridge_url|$nexus_pid|$lua" "through a bare forwarder (floor)|$bare_url|$bare_pid|"; do
  IFS='|' read -r label url proxy script <<<"$path"
  threads=1 connections=1 measure 0-1 3 "$url" "$proxy" "$script" >/dev/null
  read -r rps p50 p99 bad _ <<<"$(threads=1 connections=1 measure 0-1 "$duration" "$url" "$proxy" "$script")"
  echo "one connection, $label: $rps $p50 $p99 $bad" >&2
  single+="| one connection | $label | $rps | $p50 | $p99 | $bad | | | |"$'\n'
  case "$label" in direct*) sp50="$p50";; *Bridge) sbp50="$p50";; *) sfp50="$p50";; esac
done
rows+="$single"
summary+="- **one connection** (no queueing): p50 overhead **$(awk -v a="$sbp50" -v b="$sp50" 'BEGIN { printf "%.2f", a - b }') ms** through the Bridge (bare forwarder $(awk -v a="$sfp50" -v b="$sp50" 'BEGIN { printf "%.2f", a - b }') ms)"$'\n'
rm -f "$lua"

result="$(dirname "${BASH_SOURCE[0]}")/results/bridge.md"
{
  echo "# Bridge overhead"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine)"
  echo "- load: wrk -t2 -c32 (one connection: wrk -t1 -c1), $rounds alternating rounds of ${duration}s per path after a warm-up, median round shown; upstream: bench/tools/FakeProvider /api/* (small JSON); Bridge: api_key credential injected, bridge-only API key, SQLite"
  echo "- layouts: shared = all processes on both cores; separate = the proxy (Nexus, or the bare forwarder) alone on core 1, wrk and the upstream on core 0 in every run"
  echo "- bare forwarder: bench/tools/BareForwarder, Kestrel in and one HttpMessageInvoker out, request and response headers passed less the hop-by-hop ones (RFC 9110 §7.6.1) and nothing else, the floor any correct ASP.NET Core proxy pays here"
  echo
  echo "| layout | path | requests/s | p50 (ms) | p99 (ms) | non-2xx | CPU µs/request: wrk | proxy | upstream |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s' "$rows"
  echo
  printf '%s' "$summary"
} > "$result"
echo; cat "$result"
