#!/usr/bin/env bash
# setup.sh — install the ACP tests' npm packages (the official ACP SDK, acpx, the MCP
# reference server, ajv) from package-lock.json, once: skipped when node_modules already
# matches the lock file, so re-runs (and the second build preset) are offline and fast.
# Exit 77 (ctest's skip) when node/npm are missing or too old.
set -euo pipefail
cd "$(dirname "$0")"
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: '$tool' is not installed (Debian: apt-get install nodejs npm)"
    exit 77
  fi
done
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "SKIP: node $(node --version) is too old; the ACP SDK needs node 20 or newer"
  exit 77
fi
stamp=node_modules/.qcoder-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "npm ci: node_modules matches package-lock.json, skipped"
  exit 0
fi
# two build presets may run this at once: one installs, the other waits for it
exec 9>.npm-ci.lock
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
if ! timeout 480 npm ci --no-audit --no-fund; then
  # acpx depends on @openclaw/fs-safe, whose per-platform builds are optional packages;
  # a registry that serves only this platform's build cannot give the lock file the
  # others, and `npm ci` then refuses the lock as out of sync. `npm install` installs
  # the same locked versions; the lock file must come out unchanged.
  echo "npm ci refused the lock file; installing the locked versions with npm install"
  timeout 480 npm install --no-audit --no-fund
  if [ "$(sha256sum package-lock.json | cut -d' ' -f1)" != "$want" ]; then
    echo "FAIL: npm install changed package-lock.json: the lock file is stale (run npm install and commit it)"
    exit 1
  fi
fi
echo "$want" > "$stamp"
