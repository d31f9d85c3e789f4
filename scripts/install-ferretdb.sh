#!/usr/bin/env bash
# Builds FerretDB v1.24.2 (the MongoDB-wire-compatible server the MongoDB tests run against) from
# the Go module proxy, once, into ~/.cache/zpk/. A plain `go install …@v1.24.2` does not work: the
# proxy refuses the version-list lookup it makes, and the module lacks build/version/version.txt
# (its binary panics at start without it), so we build from a writable copy of the module.
set -euo pipefail
VERSION=v1.24.2
BIN="${FERRETDB_BIN:-$HOME/.cache/zpk/ferretdb-$VERSION}"
if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  echo "ferretdb: $BIN"
  exit 0
fi
command -v go >/dev/null || { echo "install-ferretdb: Go is required" >&2; exit 1; }
export GOTELEMETRY=off GOFLAGS=-mod=mod
mkdir -p "$(dirname "$BIN")"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
dir=$(cd "$work" && go mod download -json "github.com/FerretDB/FerretDB@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
echo "$VERSION" > "$work/src/build/version/version.txt"
echo "building ferretdb $VERSION (a few minutes on a fresh machine)…"
(cd "$work/src" && go build -trimpath -o "$BIN" ./cmd/ferretdb)
"$BIN" --version | head -1
echo "ferretdb: $BIN"
