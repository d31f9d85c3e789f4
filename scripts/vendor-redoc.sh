#!/usr/bin/env bash
# Refreshes vendor/redoc/ (the API reference renderer served at /docs) from the npm package
# `redoc`, pinned below: `npm pack` through the ordinary npm client, then the standalone bundle and
# its licenses are copied. Vendored rather than a dependency: the package's own dependency tree
# (React, MobX, styled-components, ...) is not needed at run time, only this one self-contained
# file, and serving it from the repo keeps /docs free of any CDN.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.5.4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "redoc@$VERSION" >/dev/null && tar xzf "redoc-$VERSION.tgz")
mkdir -p vendor/redoc
cp "$tmp/package/bundles/redoc.standalone.js" "$tmp/package/bundles/redoc.standalone.js.LICENSE.txt" vendor/redoc/
cp "$tmp/package/LICENSE" vendor/redoc/LICENSE
echo "redoc@$VERSION" >vendor/redoc/VERSION
sha256sum vendor/redoc/redoc.standalone.js
