#!/usr/bin/env bash
# Copies the pinned third-party browser files into web/assets, so the pages work offline and the
# server can embed them. Run after changing a version in package.json; commit the results.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
mkdir -p ../assets
cp node_modules/mermaid/dist/mermaid.min.js ../assets/mermaid.min.js
cp node_modules/mermaid/LICENSE ../assets/mermaid.LICENSE
echo "vendored mermaid $(node -p 'require("./node_modules/mermaid/package.json").version')"
