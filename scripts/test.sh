#!/usr/bin/env bash
# test.sh — README command B: set everything up and run the whole test suite.
#
# Installs what a fresh Debian 12 machine lacks, then configures, builds and tests the
# release build and the ASan+UBSan build (cmake workflow presets). Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh --test
for preset in release asan; do
  echo "=== $preset: configure, build, test ==="
  cmake --workflow --preset "$preset"
done
echo "=== all tests passed ==="
