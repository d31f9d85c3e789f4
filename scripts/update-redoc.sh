#!/usr/bin/env bash
# Refreshes docs/redoc/ (the API reference renderer served at /docs) from the npm package
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
mkdir -p docs/redoc
cp "$tmp/package/bundles/redoc.standalone.js" "$tmp/package/bundles/redoc.standalone.js.LICENSE.txt" docs/redoc/
cp "$tmp/package/LICENSE" docs/redoc/LICENSE
echo "redoc@$VERSION" >docs/redoc/VERSION
sha256sum docs/redoc/redoc.standalone.js
