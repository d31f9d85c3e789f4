#!/usr/bin/env bash
# Installs the load generators `npm run bench` drives, on a Debian machine with Go: idempotent,
# non-interactive, and quiet when everything is already there.
#
#   bash scripts/install-bench-tools.sh
#
# - ghz (gRPC load): `go install github.com/bojand/ghz/cmd/ghz@latest` (Go module proxy) into
#   $(go env GOBIN) or $(go env GOPATH)/bin, unless a ghz is already on PATH or there.
# - h2load (Debian `nghttp2-client`) and wrk (Debian `wrk`) for HTTP load, via apt-get if missing.
set -euo pipefail

GHZ_PACKAGE="github.com/bojand/ghz/cmd/ghz@${GHZ_VERSION:-latest}"
say() { printf 'install-bench-tools: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

# --- ghz ------------------------------------------------------------------------------------------
gobin=""
if command -v go >/dev/null; then
  gobin="$(go env GOBIN)"
  [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
fi
if ! command -v ghz >/dev/null && { [ -z "$gobin" ] || [ ! -x "$gobin/ghz" ]; }; then
  command -v go >/dev/null || die "ghz is missing and go is not on PATH (Go 1.22 or later is needed to build it)"
  say "ghz: go install $GHZ_PACKAGE"
  GOTELEMETRY=off go install "$GHZ_PACKAGE"
  [ -x "$gobin/ghz" ] || die "go install did not produce $gobin/ghz"
fi

# --- h2load, wrk (Debian packages) ----------------------------------------------------------------
missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and apt-get is not available; install them by hand"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  say "apt-get install ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
