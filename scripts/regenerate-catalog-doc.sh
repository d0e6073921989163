#!/usr/bin/env bash
# Rewrites the generated part of docs/provider-catalog.md (everything after its "Generated from ..." marker) from
# src/Nexus.Server/Providers/catalog.json, through the same catalog loader the server uses. Run it after editing the
# catalog and commit the result; CatalogDocumentTests fails while the checked-in document is stale.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dotnet build tests/Nexus.Server.Tests -c Debug -v quiet -nologo
NEXUS_WRITE_CATALOG_DOC=1 dotnet tests/Nexus.Server.Tests/bin/Debug/net10.0/Nexus.Server.Tests.dll -noColor \
  -method "Nexus.Server.Tests.Providers.CatalogDocumentTests.TheCheckedInProviderCatalogDocumentMatchesTheCatalog"
git --no-pager diff --stat -- docs/provider-catalog.md
