#!/usr/bin/env bash
# Fails when gen/ (or docs/openapi.json) is not exactly what `buf generate` makes from proto/ (someone edited the proto
# and forgot to regenerate, or edited generated code by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx --no-install buf generate -o "$tmp" >/dev/null
if ! diff -r gen "$tmp/gen" >/dev/null; then
  echo "gen/ is out of date: run 'npx buf generate' and commit the result" >&2
  diff -r gen "$tmp/gen" | head -20 >&2
  exit 1
fi
echo "gen/ matches buf generate"
# docs/openapi.json: what scripts/gen-openapi.ts makes from gen/ and the proto comments.
node --import tsx scripts/gen-openapi.ts --check
