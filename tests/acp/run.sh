#!/usr/bin/env bash
# run.sh FILE.test.mjs — one ACP end-to-end test file with node's test runner, against
# the qcoder binary in $QCODER_BIN. Exit 77 (skip) without node or the npm packages.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed"; exit 77; }
[ -f node_modules/.qcoder-lock-sha256 ] || { echo "SKIP: npm packages not installed (setup.sh)"; exit 77; }
exec node --test --test-reporter=spec "$1"
