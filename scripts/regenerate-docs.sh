#!/usr/bin/env bash
# Regenerates the generated documents: docs/configuration.md (from the options classes, their XML doc comments and
# validation attributes) and the component diagram in docs/architecture.md (from the code's component graph).
# Their tests fail while the checked-in copies are stale; run this after an intended change and commit the files.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build tests/Nexus.Server.Tests -c Debug -v quiet -nologo
for class in Nexus.Server.Tests.Hosting.ConfigurationReferenceTests Nexus.Server.Tests.Architecture.ArchitectureDocTests; do
  NEXUS_UPDATE_DOCS=1 dotnet tests/Nexus.Server.Tests/bin/Debug/net10.0/Nexus.Server.Tests.dll -noColor -class "$class"
done
git --no-pager diff --stat -- docs/configuration.md docs/architecture.md || true
