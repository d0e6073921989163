#!/usr/bin/env bash
# BenchmarkDotNet micro-benchmarks of the hot paths (issue #20), bench/micro/Nexus.Micro: client authentication
# (secret hash verify), JWT writing (ES256, RS256), revocation lookup (RevocationList, in memory), vault decrypt
# (KeyRing, AES-256-GCM), the credential caches (server row cache, SDK cache hit) and SigV4 signing. A regression
# shows per component. Writes bench/results/micro.md (BenchmarkDotNet's GitHub-flavoured tables).
#   bench/micro.sh                       the short job (3 warm-ups, 3 iterations) for every benchmark
#   bench/micro.sh --job dry             one invocation each: proves they run, measures nothing
#   bench/micro.sh --job default         BenchmarkDotNet's full statistics (minutes per benchmark; an idle machine)
#   bench/micro.sh --job short --filter '*Jwt*'
# The benchmarks run in process (BenchmarkDotNet's --inProcess: no per-job project generated and built, which takes
# minutes on a loaded 2-core machine); MICRO_OUT_OF_PROCESS=1 uses BenchmarkDotNet's default separate processes.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--job short)
printf '%s\n' "${args[@]}" | grep -qx -- '--filter' || args+=(--filter '*')
[ "${MICRO_OUT_OF_PROCESS:-}" = 1 ] || args+=(--inProcess)
project="$bench_root/bench/micro/Nexus.Micro"
bench_build "$project" -c Release -nologo -v quiet >/dev/null
artifacts="$(mktemp -d /tmp/nexus-micro.XXXXXX)"
trap 'rm -rf "$artifacts"' EXIT
# From the project's folder, where BenchmarkDotNet finds Nexus.Micro.csproj for its out-of-process toolchain.
(cd "$project" && dotnet "bin/Release/net10.0/Nexus.Micro.dll" "${args[@]}" --artifacts "$artifacts") | tail -40
result="$(dirname "${BASH_SOURCE[0]}")/results/micro.md"
{
  echo "# Micro-benchmarks (BenchmarkDotNet)"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(machine); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- run: \`bench/micro.sh ${args[*]}\`$(printf '%s\n' "${args[@]}" | grep -qx dry && echo ' — a dry job: each benchmark invoked once, to prove it runs; the times are not measurements')"
  echo "- what: ClientAuthentication (HMAC-SHA256 verify of a client secret), JwtWriting (RFC 9068 access token, ES256 / RS256), RevocationLookup (in-memory list, 10,000 revoked tokens), VaultDecrypt (AES-256-GCM, 1.2 kB), CredentialCacheHit (server row cache, SDK cache), SigV4Signing (a GET)"
  echo
  for report in "$artifacts"/results/*-report-github.md; do
    [ -f "$report" ] || continue
    echo "### $(basename "$report" -report-github.md | sed 's/^Nexus.Micro.//')"
    echo
    sed -n '/^|/p' "$report"
    echo
  done
} > "$result"
cat "$result"
