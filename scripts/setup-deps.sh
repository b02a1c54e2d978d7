#!/usr/bin/env bash
# setup-deps.sh — install the Debian 12 packages qcoder needs to build and test.
#
# Idempotent and fast when everything is present (one dpkg-query, no apt-get). Uses sudo
# when not root. Node.js/npm (for the editor-protocol tests and grammar downloads) are
# taken from Debian only when no `node`/`npm` is on PATH already.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libuv1-dev libgit2-dev libtree-sitter-dev libopenblas-dev libpcre2-dev libutf8proc-dev
  libsqlite3-dev libcurl4-openssl-dev libssl-dev libjansson-dev
  bubblewrap
)
# Extra packages used only by the test suite (real editor clients driving `qcoder lsp`).
TEST_PKGS=(neovim emacs-nox elpa-eglot)

want=("${PKGS[@]}")
if [ "${1:-}" = "--test" ]; then want+=("${TEST_PKGS[@]}"); fi
command -v node >/dev/null 2>&1 || want+=(nodejs)
command -v npm >/dev/null 2>&1 || want+=(npm)

missing=()
for p in "${want[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-deps: all ${#want[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
