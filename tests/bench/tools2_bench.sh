#!/usr/bin/env bash
# tools2_bench.sh — timings of code_outline and the repo map (not a ctest).
#
# Builds the release preset's tools2_bench and runs: the outline of a generated
# 5,000-line C file, a cold repo map of a generated 2,000-file tree, and the incremental
# update after one edit. Aims (docs/tools2.md): < 50 ms, < 10 s, < 100 ms.
set -euo pipefail
cd "$(dirname "$0")/../.."
preset=${PRESET:-release}
[ -d "build/$preset" ] || cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" --target tools2_bench >/dev/null
bin="build/$preset/tests/tools2/tools2_bench"
"$bin" outline 5000
"$bin" repomap 2000
