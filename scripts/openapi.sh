#!/usr/bin/env bash
# Regenerates docs/openapi.json, the checked-in copy of the OpenAPI document the server serves at /openapi/v1.json.
# ApiReferenceTests fails while the two differ; run this after an intended API change and commit the file.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build tests/Nexus.Server.Tests -c Debug -v quiet -nologo
NEXUS_UPDATE_OPENAPI=1 dotnet tests/Nexus.Server.Tests/bin/Debug/net10.0/Nexus.Server.Tests.dll -noColor \
  -method "Nexus.Server.Tests.ApiReference.ApiReferenceTests.TheCheckedInCopyEqualsTheGeneratedDocument"
git --no-pager diff --stat -- docs/openapi.json || true
