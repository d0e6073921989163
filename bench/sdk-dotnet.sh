#!/usr/bin/env bash
# .NET SDK micro-benchmark (issue 16): applying a cached credential to a request (target < 5 µs), and a cold
# credential fetch from a loopback Nexus started by sdks/scenario/run.sh. Writes bench/results/sdk-dotnet.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib/common.sh"
dotnet build "$root/bench/tools/SdkBench" -c Release -nologo -v quiet | grep -E " error " && exit 1 || true
table="$("$root/sdks/scenario/run.sh" dotnet "$root/bench/tools/SdkBench/bin/Release/net10.0/SdkBench.dll")"
{
  echo "# .NET SDK micro-benchmark"
  echo
  echo "\`bench/sdk-dotnet.sh\` on $(machine), $(date -u +%Y-%m-%d). Applying: \`GetCredentialsAsync\` answered from the cache"
  echo "plus \`NexusCredential.ApplyAsync\` on one \`HttpRequestMessage\` (median of 7 rounds of 1,000,000; SigV4 100,000),"
  echo "nothing sent: the process's CPU time per request, and wall time, which on a shared machine includes other"
  echo "processes' time slices. Target: under 5 µs. Cold fetch: the cache entry dropped before each \`GetCredentialsAsync\`, so each"
  echo "is one \`GET /v1/token\` to a Nexus on 127.0.0.1 (Release, SQLite), sequential, after 100 warm-up calls."
  echo
  echo "$table"
} > "$root/bench/results/sdk-dotnet.md"
cat "$root/bench/results/sdk-dotnet.md"
