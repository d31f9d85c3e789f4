#!/usr/bin/env bash
# Installs Schemathesis (the REST API fuzzer of test/e2e/openapi-schemathesis.test.ts) and
# openapi-spec-validator into a venv, pinned. Idempotent: a venv that already has these exact
# versions is kept. Prints the venv's directory on stdout (everything else goes to stderr).
set -euo pipefail
VENV="${SCHEMATHESIS_VENV:-$HOME/.cache/zpk/schemathesis-venv}"
SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1
stamp="$VENV/.zpk-installed"
want="schemathesis==$SCHEMATHESIS_VERSION openapi-spec-validator==$VALIDATOR_VERSION"
if [ -x "$VENV/bin/schemathesis" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$VENV"
  exit 0
fi
mkdir -p "$(dirname "$VENV")"
# Two test processes may call this at once: one installs, the other waits for it.
exec 9>"$VENV.lock"
flock 9
if [ -x "$VENV/bin/schemathesis" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$VENV"
  exit 0
fi
python3 -m venv "$VENV" >&2
# shellcheck disable=SC2086
"$VENV/bin/pip" install --quiet $want >&2
echo "$want" >"$stamp"
echo "$VENV"
