#!/usr/bin/env bash
# Installs what the clients in other languages (test/clients/{go,python}) need to be generated with
# `buf generate` and run, on a fresh Debian machine that has Go, Python 3 and Node: idempotent,
# non-interactive, and quiet (one line per tool) when everything is already there.
#
#   bash scripts/install-client-tools.sh
#
# - Go: protoc-gen-go and protoc-gen-go-grpc (`go install`, Go module proxy) into $(go env GOPATH)/bin
#   (or GOBIN), and the Go client's module dependencies (downloaded and compiled).
# - Python: a venv with grpcio, grpcio-tools and protobuf pinned in test/clients/python/requirements.txt
#   (PyPI), at $ZPK_CLIENT_VENV (default ~/.cache/zpk/client-venv), outside the work tree so a fresh
#   clone on the same machine reuses it. grpcio-tools also provides the protoc that buf runs for the
#   Python client, so no Debian protobuf-compiler is needed.
# - buf itself comes from node_modules (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

# Keep in step with test/clients/go/go.mod (google.golang.org/protobuf, google.golang.org/grpc >= 1.64).
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
VENV="${ZPK_CLIENT_VENV:-$HOME/.cache/zpk/client-venv}"
REQUIREMENTS=test/clients/python/requirements.txt

export GOTELEMETRY=off
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

say() { printf 'install-client-tools: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

command -v go >/dev/null || die "go is not on PATH (Go 1.24 or later is needed)"
command -v python3 >/dev/null || die "python3 is not on PATH (Python 3.9 or later is needed)"

# --- Go -------------------------------------------------------------------------------------------
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"

# go_plugin NAME PACKAGE VERSION: go install PACKAGE@VERSION unless NAME --version already says VERSION.
go_plugin() {
  local name=$1 pkg=$2 version=$3 have=""
  if [ -x "$gobin/$name" ]; then have="$("$gobin/$name" --version 2>/dev/null | awk '{print $NF}')"; fi
  if [ "${have#v}" = "${version#v}" ]; then
    say "$name $version (already installed)"
  else
    say "$name: go install $pkg@$version${have:+ (had $have)}"
    go install "$pkg@$version"
  fi
}
go_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
go_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
case ":$PATH:" in
  *":$gobin:"*) ;;
  *) say "note: $gobin is not on PATH; buf needs it there: export PATH=\"$gobin:\$PATH\"" ;;
esac
# Download the Go client's modules and compile its dependencies into the build cache, so the test's
# `go build` only compiles the client itself (a cold grpc-go build takes about a minute here).
(cd test/clients/go && go build google.golang.org/grpc google.golang.org/grpc/credentials/insecure \
  google.golang.org/grpc/metadata google.golang.org/grpc/status \
  google.golang.org/genproto/googleapis/api/annotations \
  google.golang.org/protobuf/types/known/timestamppb google.golang.org/protobuf/types/known/fieldmaskpb)
say "Go client dependencies downloaded and compiled"

# --- Python ---------------------------------------------------------------------------------------
# A stamp records what the venv was made from; a matching stamp means nothing to do.
want="$(python3 -c 'import sys; print(sys.version.split()[0])') $(sha256sum "$REQUIREMENTS" | cut -c1-16)"
if [ -x "$VENV/bin/python3" ] && [ "$(cat "$VENV/.zpk-stamp" 2>/dev/null)" = "$want" ]; then
  say "python venv $VENV (already installed)"
else
  say "python venv $VENV: pip install -r $REQUIREMENTS"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's own python3 keeps venv/ensurepip in a separate package.
    rm -rf "$VENV"
    command -v apt-get >/dev/null || die "python3 -m venv failed and apt-get is not available"
    say "apt-get install python3-venv"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python3" -m pip install -q -r "$REQUIREMENTS"
  "$VENV/bin/python3" -c 'import grpc, grpc_tools.protoc, google.protobuf'
  printf '%s\n' "$want" > "$VENV/.zpk-stamp"
fi
say "python client: source $VENV/bin/activate (its python3 runs grpc_tools.protoc for buf generate)"
