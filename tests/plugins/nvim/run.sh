#!/usr/bin/env bash
# run.sh — run one headless Neovim test of plugins/nvim (default: test_fake.lua).
#
# Exits 77 (ctest SKIP_RETURN_CODE) with a message when nvim or node is missing.
# Usage: tests/plugins/nvim/run.sh [TEST.lua]   (env QCODER_NVIM_SERVER_CMD: see harness.lua)
set -euo pipefail
here=$PWD
case $0 in */*) here=$(cd "${0%/*}" && pwd) ;; esac
test=${1:-$here/test_fake.lua}
for tool in nvim node; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: '$tool' is not installed (Debian: apt-get install neovim nodejs)"
    exit 77
  fi
done
# The test ends Neovim itself; the timeout only guards against a hang.
exec timeout -k 5 90 nvim --headless -u NONE -i NONE -n -c "luafile $test"
