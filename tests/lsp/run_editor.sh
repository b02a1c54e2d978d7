#!/usr/bin/env bash
# run_editor.sh — run one editor-level test of the real `qcoder lsp`: headless Neovim with
# plugins/nvim, Emacs eglot in batch mode, or a raw LSP client in node
# (vscode-languageserver-protocol). The model is the scripted test double everywhere.
#
#   tests/lsp/run_editor.sh nvim|emacs|node TEST QCODER_BIN [NODE_DIR]
#
# Each run gets private runtime/state/cache directories (the daemon `qcoder lsp` starts
# lives on a private socket and is stopped at the end) and exports to the test:
#   QCODER_BIN, QCODER_LSP_TEST_DIR (scratch), QCODER_SCRIPT_PROMPT_LOG (what the scripted
#   model was given, one JSON line per prompt), QCODER_PLUGIN_HARNESS (the Neovim harness).
# node: NODE_DIR gets package.json + package-lock.json and `npm ci` runs there once (again
# only when the lock file changes). Exits 77 (ctest's skip code) with a reason when the
# editor or tool is missing.
set -euo pipefail
kind=$1
test=$2
bin=$3
node_dir=${4:-}
here=$(cd "${0%/*}" && pwd)

skip() {
  echo "SKIP: $*"
  exit 77
}
case $kind in
  nvim) command -v nvim >/dev/null 2>&1 || skip "'nvim' is not installed (Debian: apt-get install neovim)" ;;
  emacs)
    command -v emacs >/dev/null 2>&1 || skip "'emacs' is not installed (Debian: apt-get install emacs-nox elpa-eglot)"
    emacs --batch -Q --eval "(progn (dolist (d (file-expand-wildcards \"/usr/share/emacs/site-lisp/elpa/*\")) (add-to-list 'load-path d)) (unless (require 'eglot nil t) (kill-emacs 3)))" >/dev/null 2>&1 ||
      skip "eglot is not installed (Debian: apt-get install elpa-eglot)"
    ;;
  node)
    for tool in node npm; do
      command -v "$tool" >/dev/null 2>&1 || skip "'$tool' is not installed (Debian: apt-get install nodejs npm)"
    done
    [ -n "$node_dir" ] || { echo "run_editor.sh: node needs NODE_DIR" >&2; exit 2; }
    ;;
  *) echo "run_editor.sh: unknown kind '$kind' (nvim, emacs, node)" >&2; exit 2 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qcoder-lsp-$kind.XXXXXX")
export QCODER_RUNTIME_DIR=$tmp/run QCODER_STATE_DIR=$tmp/state
export XDG_CACHE_HOME=$tmp/cache XDG_STATE_HOME=$tmp/xstate XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/data
export QCODER_BIN=$bin QCODER_LSP_TEST_DIR=$tmp QCODER_SCRIPT_PROMPT_LOG=$tmp/prompts.jsonl
export QCODER_PLUGIN_HARNESS=$here/../plugins/nvim/harness.lua
cleanup() {
  "$bin" stop >/dev/null 2>&1 || true   # the daemon `qcoder lsp` started (private socket)
  if [ -z "${QCT_KEEP:-}" ]; then rm -rf "$tmp"; else echo "# kept $tmp"; fi
}
trap cleanup EXIT

case $kind in
  nvim)
    export QCODER_NVIM_SERVER_CMD="[\"$bin\", \"lsp\"]"
    timeout -k 5 120 nvim --headless -u NONE -i NONE -n -c "luafile $test"
    ;;
  emacs)
    timeout -k 5 120 emacs --batch -Q -l "$test"
    ;;
  node)
    mkdir -p "$node_dir"
    want=$(sha256sum "$here/node/package-lock.json" | cut -d' ' -f1)
    stamp=$node_dir/node_modules/.qcoder-lock-sha256
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
      cp "$here/node/package.json" "$here/node/package-lock.json" "$node_dir/"
      (cd "$node_dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
      echo "$want" > "$stamp"
    fi
    NODE_PATH=$node_dir/node_modules timeout -k 5 120 node "$test"
    ;;
esac
