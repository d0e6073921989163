#!/usr/bin/env bash
# Regenerates src/Nexus.Server/Dashboard/logos.json: the provider logos the dashboard shows instead of letter avatars.
# Source: the simple-icons npm package (https://simpleicons.org), whose icon data is CC0-1.0 (public domain dedication).
# Brand names and logos may still be trademarks of their owners; they are shown only to name the service.
# Installs simple-icons into a scratch directory (never into the repository) and keeps only the SVG path and colour
# of the icons for providers in src/Nexus.Server/Providers/catalog.json. The dashboard serves them inline; nothing is
# loaded from another site.
#   scripts/update-logos.sh            # latest simple-icons
#   SIMPLE_ICONS_VERSION=15.0.0 scripts/update-logos.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="${SIMPLE_ICONS_VERSION:-latest}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "simple-icons@$version" >/dev/null)
node - "$root" "$scratch" <<'JS'
const fs = require("fs"), path = require("path");
const [root, scratch] = process.argv.slice(2);
const pkgDir = path.join(scratch, "node_modules", "simple-icons");
const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
const icons = require(path.join(pkgDir));
const catalog = JSON.parse(fs.readFileSync(path.join(root, "src/Nexus.Server/Providers/catalog.json"), "utf8")).providers;
// Catalog keys whose simple-icons slug differs (simple-icons drops a brand when its owner asks; those stay letters).
const aliases = { mistral: "mistralai", onedrive: "microsoftonedrive", sharepoint: "microsoftsharepoint", gemini: "googlegemini",
  x: "x", quickbooks: "quickbooks" };
const bySlug = {};
for (const icon of Object.values(icons)) if (icon && icon.slug) bySlug[icon.slug] = icon;
const logos = {}, missing = [];
for (const key of Object.keys(catalog).sort()) {
  const candidates = [aliases[key], key, key.replace(/[_-]/g, "")].filter(Boolean);
  const icon = candidates.map(s => bySlug[s]).find(Boolean);
  if (icon) logos[key] = { title: icon.title, hex: icon.hex, path: icon.path };
  else missing.push(key);
}
const out = {
  source: "simple-icons " + pkg.version + " (https://github.com/simple-icons/simple-icons)",
  license: "CC0-1.0 (icon data); brand names and logos remain trademarks of their owners",
  generated_by: "scripts/update-logos.sh",
  without_logo: missing,
  logos,
};
fs.writeFileSync(path.join(root, "src/Nexus.Server/Dashboard/logos.json"), JSON.stringify(out, null, 1) + "\n");
console.log(`simple-icons ${pkg.version}: ${Object.keys(logos).length} logos, letters for: ${missing.join(", ")}`);
JS
