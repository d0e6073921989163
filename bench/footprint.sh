#!/usr/bin/env bash
# Footprint (issue #20): the published binary is ready <= 0.5 s after it starts (migrations already applied) and
# uses <= 80 MB of resident memory when idle. Publishes Release framework-dependent: plain (`dotnet publish -c
# Release`, as docs/deployment.md describes for a host with the runtime) and with ReadyToRun (as the Dockerfile does),
# and, for the variant "composite", self-contained with the app and the framework in one ReadyToRun image; for the
# "trimmed" variants (measured, not supported), self-contained and trimmed (TrimMode=partial), with and without
# ReadyToRun; then for
# each variant (a publish and runtime settings, DOTNET_* environment variables)
# and each round:
#   - copies a data directory whose migrations were applied by an earlier start of the same binary (SQLite), so the
#     measured start is the everyday restart, not the first one;
#   - starts the published apphost (bin/Nexus.Server, the container's ENTRYPOINT) and polls GET /readyz every ~5 ms:
#     "ready" is the time from launching the process to the first 200 (the database answers); "CPU" is the
#     process's user + system CPU time at that moment (all threads; less sensitive than the wall clock to other work
#     sharing the machine);
#   - reads VmRSS from /proc/PID/status after 5 s idle, then after a short warm load (wrk -t1 -c8: 3 s of
#     GET /healthz and 3 s of client-credentials token issuance, ES256) and 2 s of rest.
# Rounds alternate the variants, so drift of a shared machine hits them all. Figures are medians (and the minimum of
# the ready times); the server's Startup timeline (Debug log of Nexus.Server.Hosting.StartupTimeline) of the last
# default run is quoted to show where the time goes.
#   bench/footprint.sh [rounds] [variant...]     default 5 rounds, every variant; e.g. bench/footprint.sh 3 default r2r
#   PORT=18590                                    the port Nexus listens on
#   FOOTPRINT_BUILDS=DIR                          DIR/fd, DIR/r2r (and DIR/sc, DIR/trim, DIR/trim-r2r) hold the publishes
#                                                 already (skips publishing)
#   FOOTPRINT_BASELINE=DIR                        adds the variant "baseline": the publish in DIR (e.g. of main), for a
#                                                 before/after in the same run
# The whole script is one { … } block: bash reads it at once, so editing the file while it runs changes nothing.
{
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
rounds="${1:-5}"; shift || true
port="${PORT:-18590}"
need wrk curl
work="$(mktemp -d /tmp/nexus-footprint.XXXXXX)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# name|publish|environment (space-separated NAME=value)|what it is for
variants_all=(
  "default|fd||\`dotnet publish -c Release\` and the csproj's runtimeconfig (workstation GC, concurrent GC)"
  "r2r|r2r||ReadyToRun, as the Dockerfile publishes: -r linux-x64 -p:PublishReadyToRun=true (Nexus and its NuGet packages precompiled)"
  "no-wx|fd|DOTNET_EnableWriteXorExecute=0|W^X off: the JIT writes code pages without remapping them"
  "no-pgo|fd|DOTNET_TieredPGO=0|no instrumented tier (less JIT work while warming up)"
  "no-tiering|fd|DOTNET_TieredCompilation=0|every method fully optimised on first call (no quick JIT)"
  "no-r2r|fd|DOTNET_ReadyToRun=0|the framework's precompiled (ReadyToRun) code not used: every method JIT-compiled, so fewer pages of the framework's images are read, for a slower start"
  "no-r2r-small|fd|DOTNET_ReadyToRun=0 DOTNET_EnableWriteXorExecute=0 DOTNET_TieredPGO=0 DOTNET_GCConserveMemory=5 DOTNET_GCgen0size=0x400000|no-r2r with the small instance's settings"
  "no-concurrent|fd|DOTNET_gcConcurrent=0|workstation GC without the background GC thread"
  "conserve|fd|DOTNET_GCConserveMemory=5|workstation GC that compacts more to keep the heap small"
  "gen0-4mb|fd|DOTNET_GCgen0size=0x400000|a 4 MB gen0 budget (smaller than the default, which follows the L3 cache)"
  "hardlimit-64mb|fd|DOTNET_GCHeapHardLimit=0x4000000|the GC heap capped at 64 MB (OutOfMemoryException beyond)"
  "server-gc|fd|DOTNET_gcServer=1|server GC (one heap per core; DATAS, the default in .NET 10, sizes it dynamically)"
  "server-gc-1heap|fd|DOTNET_gcServer=1 DOTNET_GCHeapCount=1 DOTNET_GCHeapAffinitizeMask=0x1|server GC with one heap pinned to core 0"
  "composite|sc||self-contained, the app and the framework precompiled together: -r linux-x64 --self-contained -p:PublishReadyToRun=true -p:PublishReadyToRunComposite=true (no generic instantiation left for the JIT across the two)"
  "small|r2r|DOTNET_EnableWriteXorExecute=0 DOTNET_TieredPGO=0 DOTNET_GCConserveMemory=5 DOTNET_GCgen0size=0x400000|small single instance: the startup and memory settings together, ReadyToRun"
  "composite-small|sc|DOTNET_EnableWriteXorExecute=0 DOTNET_TieredPGO=0 DOTNET_GCConserveMemory=5 DOTNET_GCgen0size=0x400000|scale to zero: the composite image with the small instance's settings"
  "trimmed|trim||measured, not supported (see below): self-contained and trimmed, -r linux-x64 --self-contained -p:PublishTrimmed=true -p:TrimMode=partial -p:JsonSerializerIsReflectionEnabledByDefault=true (the framework and the libraries marked trimmable lose what nothing references; Nexus, Dapper and the other libraries stay whole); no ReadyToRun code, the framework's included: everything is JIT-compiled"
  "trimmed-r2r|trim-r2r||measured, not supported: the trimmed publish with -p:PublishReadyToRun=true"
  "trimmed-small|trim|DOTNET_EnableWriteXorExecute=0 DOTNET_TieredPGO=0 DOTNET_GCConserveMemory=5 DOTNET_GCgen0size=0x400000|measured, not supported: the trimmed publish with the small instance's settings"
)
[ -n "${FOOTPRINT_BASELINE:-}" ] && variants_all=("baseline|base||FOOTPRINT_BASELINE: a publish of another commit ($(basename "$FOOTPRINT_BASELINE")), for comparison" "${variants_all[@]}")
if [ $# -gt 0 ]; then
  variants=()
  for want in "$@"; do for v in "${variants_all[@]}"; do [ "${v%%|*}" = "$want" ] && variants+=("$v"); done; done
else
  variants=("${variants_all[@]}")
fi

[ -n "${FOOTPRINT_BASELINE:-}" ] && ln -s "$FOOTPRINT_BASELINE" "$work/base"
if [ -n "${FOOTPRINT_BUILDS:-}" ]; then
  ln -s "$FOOTPRINT_BUILDS/fd" "$work/fd"; [ -d "$FOOTPRINT_BUILDS/r2r" ] && ln -s "$FOOTPRINT_BUILDS/r2r" "$work/r2r"
  for b in sc trim trim-r2r; do [ -d "$FOOTPRINT_BUILDS/$b" ] && ln -s "$FOOTPRINT_BUILDS/$b" "$work/$b"; done
else
  echo "Publishing Release (framework-dependent, and ReadyToRun)" >&2
  dotnet publish "$bench_root/src/Nexus.Server" -c Release -nologo -v quiet -o "$work/fd" >/dev/null
  # The ReadyToRun and the composite publish share obj/Release/net10.0/linux-x64, and the SDK's incremental check does
  # not see the switch between them: after a composite publish, a ReadyToRun publish of unchanged sources copied the
  # composite's stub of Nexus.Server.dll, which aborts at start without its framework. Each starts from a clean one.
  rid_obj="$bench_root/src/Nexus.Server/obj/Release/net10.0/linux-x64"
  if printf '%s\n' "${variants[@]}" | grep -q '|r2r|'; then
    rm -rf "$rid_obj"
    dotnet publish "$bench_root/src/Nexus.Server" -c Release -nologo -v quiet -r linux-x64 --self-contained false \
      -p:PublishReadyToRun=true -o "$work/r2r" >/dev/null
  fi
  if printf '%s\n' "${variants[@]}" | grep -q '|sc|'; then
    rm -rf "$rid_obj"
    dotnet publish "$bench_root/src/Nexus.Server" -c Release -nologo -v quiet -r linux-x64 --self-contained true \
      -p:PublishReadyToRun=true -p:PublishReadyToRunComposite=true -o "$work/sc" >/dev/null
  fi
  # Trimmed: the trim analysis warnings (Nexus and some of its libraries are not annotated for trimming) would fail the
  # build, which treats warnings as errors; they are what the note under the table is about.
  for trim in trim trim-r2r; do
    if printf '%s\n' "${variants[@]}" | grep -q "|$trim|"; then
      rm -rf "$rid_obj"
      dotnet publish "$bench_root/src/Nexus.Server" -c Release -nologo -v quiet -r linux-x64 --self-contained true \
        -p:PublishTrimmed=true -p:TrimMode=partial -p:JsonSerializerIsReflectionEnabledByDefault=true \
        -p:TreatWarningsAsErrors=false -p:SuppressTrimAnalysisWarnings=true \
        -p:PublishReadyToRun="$([ "$trim" = trim-r2r ] && echo true || echo false)" -o "$work/$trim" >/dev/null
    fi
  done
  rm -rf "$rid_obj"
fi
size_mb() { du -smL "$1" | cut -f1; }

load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
key="$(head -c 32 /dev/urandom | base64)"
api_key="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
base="http://127.0.0.1:$port"
if curl -fs "$base/healthz" >/dev/null 2>&1; then echo "port $port is already in use; stop what listens there" >&2; exit 1; fi

# launch BIN DATA [env...]: starts Nexus and sets pid and t0 (ns).
launch() {
  local bin="$1" data="$2"; shift 2
  t0="$(date +%s%N)"
  env ASPNETCORE_ENVIRONMENT=Production ENCRYPTION_KEY="$key" API_KEY="$api_key" BASE_URL="$base" Nexus__DataDirectory="$data" \
      Logging__LogLevel__Default=Warning Logging__LogLevel__Nexus.Server.Hosting.StartupTimeline=Debug "$@" \
      "$bin" --urls "$base" > "$data/server.log" 2>&1 &
  pid=$!
}
# probe: one GET /readyz over bash's /dev/tcp (no process started: a curl every 5 ms would take CPU from the start
# being measured); true on a 200.
probe() {
  local status=""
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  IFS= read -r -t 2 status <&3 || true
  exec 3<&- 3>&-
  [[ "$status" == "HTTP/1.1 200"* ]]
}
exec {pause_fd}<> <(:)   # read -t on it: a 5 ms pause without starting sleep(1)
# wait_ready: polls /readyz every ~5 ms until a 200; prints the ms since launch. Fails if the process ends.
wait_ready() {
  local deadline=$((SECONDS + 60))
  until probe 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then cat "$data/server.log" >&2; return 1; fi
    read -r -t 0.005 -u "$pause_fd" || true
  done
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=""; }
rss_mb() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# private_mb PID: the pages only this process maps (Private_Clean + Private_Dirty, "USS"): VmRSS also counts the
# framework's DLLs it shares with every other .NET process on the host, and W^X's second mapping of JIT-ed code.
private_mb() { awk '/^Private_(Clean|Dirty):/ { k += $2 } END { printf "%.0f", k / 1024 }' "/proc/$1/smaps_rollup"; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" -v t="$(cpu_ticks "$1")" 'BEGIN { printf "%.0f", t * 1000 / hz }'; }

# The template data directory: migrations applied and an App Client created by a first start of the default build.
template="$work/template"; mkdir -p "$template"
data="$template"
launch "$work/fd/Nexus.Server" "$template"
wait_ready >/dev/null
created="$(curl -fs -X POST "$base/v1/admin/clients" -H "X-API-Key: $api_key" -H 'Content-Type: application/json' \
  -d '{"name":"footprint","scopes":["read"]}')"
stop
client_id="$(sed -E 's/.*"client_id":"([^"]+)".*/\1/' <<<"$created")"
client_secret="$(sed -E 's/.*"client_secret":"([^"]+)".*/\1/' <<<"$created")"
rm -f "$template/server.log"
lua="$work/token.lua"
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)"
LUA

declare -A ready cpu idle uss loaded reqs
timeline=""
for round in $(seq 1 "$rounds"); do
  for entry in "${variants[@]}"; do
    IFS='|' read -r name publish settings _ <<<"$entry"
    data="$work/run"; rm -rf "$data"; cp -a "$template" "$data"
    # shellcheck disable=SC2086 # settings: NAME=value words
    launch "$work/$publish/Nexus.Server" "$data" $settings
    r="$(wait_ready)"; c="$(cpu_ms "$pid")"
    sleep 5; i="$(rss_mb "$pid")"; u="$(private_mb "$pid")"
    h="$(wrk -t1 -c8 -d3s "$base/healthz" | awk '/requests in/ { print $1 }')"
    t="$(wrk -t1 -c8 -d3s -s "$lua" "$base/oauth2/token" | awk '/requests in/ { print $1 }')"
    sleep 2; l="$(rss_mb "$pid")"
    [ "$name" = default ] && timeline="$(grep -m1 'Startup timeline' "$data/server.log" | sed 's/^.*brackets): //' || true)"
    stop
    ready[$name]+="$r "; cpu[$name]+="$c "; idle[$name]+="$i "; uss[$name]+="$u "; loaded[$name]+="$l "; reqs[$name]+="$((h + t)) "
    echo "round $round $name: ready ${r} ms, CPU ${c} ms, idle ${i} MB (private ${u} MB), after load ${l} MB ($h healthz + $t tokens)" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minimum() { tr ' ' '\n' | grep -v '^$' | sort -n | head -1; }

result="$(dirname "${BASH_SOURCE[0]}")/results/footprint.md"
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
{
  echo "# Footprint: time to ready and resident memory of the published binary"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  if awk -v l="${load_end%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
    echo "- machine: $(machine); load average $load_start at the start, $load_end at the end (above the $(nproc) cores, other work"
    echo "  shared them: the wall-clock ready times then include waiting for a core, and the CPU column compares variants better)"
  else
    echo "- machine: $(machine); load average $load_start at the start, $load_end at the end"
  fi
  echo "- build: $(git -C "$bench_root" rev-parse --short HEAD)$(git -C "$bench_root" diff --quiet HEAD -- src || echo ' with local changes in src/')"
  echo "- binary: the apphost Nexus.Server of \`dotnet publish -c Release\` (framework-dependent, $(size_mb "$work/fd") MB); r2r (the Dockerfile's): \`-r linux-x64 -p:PublishReadyToRun=true\`$( [ -d "$work/r2r" ] && echo " ($(size_mb "$work/r2r") MB)")$( [ -d "$work/sc" ] && echo "; composite: self-contained, app and framework in one ReadyToRun image ($(size_mb "$work/sc") MB, the runtime included)")$( [ -d "$work/trim" ] && echo "; trimmed: self-contained ($(size_mb "$work/trim") MB)")$( [ -d "$work/trim-r2r" ] && echo "; trimmed with ReadyToRun ($(size_mb "$work/trim-r2r") MB)")"
  echo "- each start: SQLite, a copy of a data directory whose migrations were applied by an earlier start; Production, logs at Warning"
  echo "- ready: launch of the process to the first 200 from GET /readyz (polled every ~5 ms); CPU: the process's user + system CPU time then (all threads)"
  echo "- RSS: VmRSS after 5 s idle (private: Private_Clean + Private_Dirty of /proc/PID/smaps_rollup, the pages no other process shares); after load: 2 s after wrk -t1 -c8 for 3 s on GET /healthz and 3 s on POST /oauth2/token (client credentials, ES256)"
  echo "- $rounds rounds, variants alternating; medians (ready: median and minimum)"
  echo
  echo "| variant | settings | ready ms (median) | ready ms (min) | CPU ms to ready | RSS idle MB | private idle MB | RSS after load MB | requests in the load (median) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for entry in "${variants[@]}"; do
    IFS='|' read -r name publish settings what <<<"$entry"
    echo "| $name | ${settings:-—}$([ "$publish" = r2r ] && echo " (ReadyToRun)") | $(median <<<"${ready[$name]}") | $(minimum <<<"${ready[$name]}") | $(median <<<"${cpu[$name]}") | $(median <<<"${idle[$name]}") | $(median <<<"${uss[$name]}") | $(median <<<"${loaded[$name]}") | $(median <<<"${reqs[$name]}") |"
  done
  echo
  echo "What each variant is:"
  echo
  for entry in "${variants[@]}"; do IFS='|' read -r name _ _ what <<<"$entry"; echo "- **$name**: $what"; done
  echo
  echo "Raw values (per round):"
  echo
  for entry in "${variants[@]}"; do
    name="${entry%%|*}"
    echo "- $name: ready ${ready[$name]% }ms; CPU ${cpu[$name]% }ms; idle ${idle[$name]% }MB (private ${uss[$name]% }MB); after load ${loaded[$name]% }MB"
  done
  if [ -n "$timeline" ]; then
    echo
    echo "Startup timeline of the last default run (the server's own Debug log; ms since the process started, CPU ms in brackets):"
    echo "\`$timeline\`"
  fi
  echo
  if printf '%s\n' "${variants[@]}" | grep -q '|trim'; then
    echo "**Trimming** is measured, not supported. ASP.NET Core supports trimming only for apps built for it (Native AOT /"
    echo "\`IsTrimmable\`), which Nexus is not: \`TrimMode=partial\` trims the framework and the libraries marked trimmable"
    echo "only, and the build's trim analysis (its warnings suppressed here) points at the places that reach members by"
    echo "reflection: Dapper's emitted row mappers, the MCP SDK's reflection over the tools, System.Text.Json's reflection over"
    echo "framework types. The trimmed build starts, issues tokens and answers the admin API and MCP; no test suite runs against"
    echo "it, so a member removed under a path nothing exercised would fail there at run time."
  else
    echo "**Trimming** (\`PublishTrimmed\`, the variants trimmed, trimmed-r2r and trimmed-small) was not measured in this run."
  fi
} > "$result"
cat "$result"

# For bench/run-all.sh (docs/benchmarks.md).
r="$(median <<<"${ready[default]:-}")"; i="$(median <<<"${idle[default]:-}")"
fastest="$(for entry in "${variants[@]}"; do n="${entry%%|*}"; if [ -n "${ready[$n]:-}" ]; then echo "$(median <<<"${ready[$n]}") $n"; fi; done | sort -n | head -n 1 | awk '{ print $2 " " $1 " ms" }')"
smallest="$(for entry in "${variants[@]}"; do n="${entry%%|*}"; if [ -n "${idle[$n]:-}" ]; then echo "$(median <<<"${idle[$n]}") $n"; fi; done | sort -n | head -n 1 | awk '{ print $2 " " $1 " MB" }')"
if [ -n "$r" ]; then
  summary_row "footprint: ready after start, published binary (issue #20)" "" "$r ms" "" "" "" "" "≤ 0.5 s (migrations applied)" \
    "$(awk -v r="$r" 'BEGIN { print (r <= 500) ? "met" : "missed" }')" "median of $rounds starts of the plain publish, CPU $(median <<<"${cpu[default]}") ms to ready; fastest variant: $fastest; load average $load_end; see bench/results/footprint.md"
  summary_row "footprint: idle RSS, published binary (issue #20)" "" "$i MB" "" "" "" "" "≤ 80 MB" \
    "$(awk -v i="$i" 'BEGIN { print (i <= 80) ? "met" : "missed" }')" "VmRSS after 5 s idle of the plain publish; smallest variant: $smallest; see bench/results/footprint.md"
fi
exit
}
