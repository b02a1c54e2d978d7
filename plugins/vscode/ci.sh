#!/usr/bin/env bash
# ci.sh — build, lint, unit-test and package the VS Code extension.
#
#   plugins/vscode/ci.sh [OUT_DIR]      (the .vsix goes to OUT_DIR, default this folder)
#
# Steps: npm ci (skipped when node_modules already matches package-lock.json, so re-runs
# are offline and fast), tsc, eslint, node --test on the compiled tests, vsce package
# (runtime dependencies bundled from node_modules; no network). Exits 77 — ctest's skip
# code — when node/npm are missing or too old.
set -euo pipefail
out_arg=${1:-}
case $out_arg in
  /*) ;;
  ?*) out_arg=$PWD/$out_arg ;;  # relative to where ci.sh was run from
esac
case $0 in */*) cd "${0%/*}" ;; esac

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: '$tool' is not installed (Debian: apt-get install nodejs npm)"
    exit 77
  fi
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "SKIP: node $(node --version) is too old; the extension's tools need node 20 or newer"
  exit 77
fi

out_dir=$(mkdir -p "${out_arg:-.}" && cd "${out_arg:-.}" && pwd)
step() { printf '=== [%3d s] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
t0=$(date +%s)

stamp=node_modules/.qcoder-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  step "npm ci: node_modules matches package-lock.json, skipped"
else
  step "npm ci"
  timeout 480 npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi

step "build (tsc)"
rm -rf out
npm run --silent build

step "lint (eslint)"
npm run --silent lint

step "unit tests (node --test)"
npm run --silent test

version=$(node -p 'require("./package.json").version')
vsix="$out_dir/qcoder-$version.vsix"
step "package (vsce) -> $vsix"
rm -f "$vsix"
npm run --silent package -- --out "$vsix"
test -s "$vsix"
if command -v unzip >/dev/null 2>&1; then
  listing=$(unzip -l "$vsix")
  for f in extension/package.json extension/out/src/extension.js extension/node_modules/vscode-languageclient/package.json; do
    grep -q " $f\$" <<<"$listing" || { echo "FAIL: $f is missing from $vsix"; exit 1; }
  done
  if grep -Eq ' extension/(src|test|out/test)/' <<<"$listing"; then
    echo "FAIL: sources or tests were packaged into $vsix"; exit 1
  fi
fi
step "ok"
