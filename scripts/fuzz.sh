#!/usr/bin/env bash
# The long fuzz run of issue 7: FUZZ_RUNS generated requests (default 100 000) against one real
# server — REST, raw HTTP/1.1, Connect, every RPC transport, mangled gRPC bytes — then the
# secrets/RSS/log checks. CI runs the same file with its small default (5 000).
#   scripts/fuzz.sh                      # 100 000 requests, random seed
#   FUZZ_RUNS=300000 scripts/fuzz.sh     # more
#   FUZZ_SEED=123 scripts/fuzz.sh        # replay a seed
#   FUZZ_FAIL_FAST=1 scripts/fuzz.sh     # stop at the first bad request and shrink it
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_RUNS="${FUZZ_RUNS:-100000}"
exec npx vitest run --config test/vitest.config.ts test/e2e/hostile-fuzz.test.ts "$@"
