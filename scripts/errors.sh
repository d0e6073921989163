#!/usr/bin/env bash
# Regenerates docs/errors.md, the list of every problem code and OAuth error, from src/Nexus.Server/Hosting/ProblemCatalog.cs
# and OAuthErrorCatalog.cs. ErrorCatalogTests fails while the two differ; run this after changing a catalog and commit the file.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build tests/Nexus.Server.Tests -c Debug -v quiet -nologo
NEXUS_UPDATE_DOCS=1 dotnet tests/Nexus.Server.Tests/bin/Debug/net10.0/Nexus.Server.Tests.dll -noColor \
  -method "Nexus.Server.Tests.Hosting.ErrorCatalogTests.EveryCatalogEntryIsDocumentedInDocsErrors"
git --no-pager diff --stat -- docs/errors.md || true
