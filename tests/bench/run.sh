#!/usr/bin/env bash
# run.sh — the measurements behind BENCHMARKS.md, in one go (by hand, release build).
#
#   tests/bench/run.sh BUILD_DIR MODEL_DIR [OUT]
#
# MODEL_DIR holds 30b-a3b-4l-q4_k_m.gguf and 30b-a3b-4l-q8_0.gguf, made with
#   qcoder mkmodel --preset 30b-a3b --layers 4 --type q4_k_m|q8_0 \
#     --vocab-from tests/data/oracle/models/vocab-qwen3.gguf -o MODEL_DIR/30b-a3b-4l-TYPE.gguf
# The machine is shared: before each step the script waits (up to 10 minutes) for the
# 1-minute load average to drop below 1.5, and records the load it started at.
set -u
B=${1:?build dir}; M=${2:?model dir}; OUT=${3:-/dev/stdout}
Q=$B/daemon/qcoder
wait_quiet() {
  for _ in $(seq 120); do
    l=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$l" 'BEGIN { exit !(l < 1.5) }' && break
    sleep 5
  done
  echo "## $1 (load $(cut -d' ' -f1-3 /proc/loadavg))"
}
{
  echo "# $(date -u +%FT%TZ) $(git -C "$(dirname "$0")" rev-parse --short HEAD)"
  wait_quiet "bandwidth, 2 threads"; "$B"/tests/bench/bench_bandwidth 2 1024 20
  wait_quiet "bandwidth, 1 thread"; "$B"/tests/bench/bench_bandwidth 1 1024 10
  wait_quiet "kernels"; "$B"/tests/bench/bench_kernels 256 200
  wait_quiet "shapes"; "$B"/tests/bench/bench_kernels --shapes
  for t in q4_k_m q8_0; do
    wait_quiet "bench $t"; "$Q" bench --model "$M/30b-a3b-4l-$t.gguf" -p 512 -n 128 -r 5 --json
  done
  for k in avx2 scalar; do
    wait_quiet "bench q4_k_m --kernels $k"; "$Q" bench --model "$M/30b-a3b-4l-q4_k_m.gguf" -p 64 -n 16 -r 2 --kernels $k --json
  done
  for mm in vecdot sgemm; do
    wait_quiet "bench q4_k_m QCODER_MATMUL=$mm"; QCODER_MATMUL=$mm "$Q" bench --model "$M/30b-a3b-4l-q4_k_m.gguf" -p 512 -n 0 -r 3 --json
  done
  wait_quiet "agent q4_k_m"; "$Q" bench --model "$M/30b-a3b-4l-q4_k_m.gguf" -p 512 -n 0 -r 1 --agent
} > "$OUT" 2>&1
