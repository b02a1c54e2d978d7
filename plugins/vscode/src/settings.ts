// settings.ts — the extension's settings → how `qcoder lsp` is launched.
//
// Pure (no `vscode` import) so it is unit-tested in node. The settings map to the flags
// and initializationOptions of docs/lsp-contract.md: `qcoder.model` → `--model` /
// `model`, `qcoder.remoteUrl` → `--remote` / `remote`, `qcoder.mode` → `--mode` / `mode`.
// Bad settings are reported as messages that name the setting to change; nothing is
// launched with them.

export const MODES = ['ask', 'auto-edit', 'full-auto', 'read-only'] as const;
export type Mode = (typeof MODES)[number];

/** The raw values of the `qcoder.*` settings (anything may come from settings.json). */
export interface Settings {
  path?: unknown;
  model?: unknown;
  remoteUrl?: unknown;
  mode?: unknown;
}

export interface InitializationOptions {
  model?: string;
  remote?: string;
  mode?: Mode;
}

export interface ServerLaunch {
  command: string;
  args: string[];
  initializationOptions: InitializationOptions;
}

export type LaunchResult = { ok: true; launch: ServerLaunch } | { ok: false; errors: string[] };

const DEFAULT_PATH = 'qcoder';

function text(v: unknown): string | undefined {
  if (typeof v !== 'string') {
    return undefined;
  }
  const t = v.trim();
  return t === '' ? undefined : t;
}

/** `~` or `~/x` → the home folder (when known); other values unchanged. */
export function expandHome(p: string, home: string | undefined): string {
  if (!home) {
    return p;
  }
  if (p === '~') {
    return home;
  }
  if (p.startsWith('~/')) {
    return home.replace(/\/+$/, '') + p.slice(1);
  }
  return p;
}

/** The command, arguments and initializationOptions for `qcoder lsp`, or what is wrong. */
export function serverLaunch(s: Settings, home?: string): LaunchResult {
  const errors: string[] = [];
  for (const key of ['path', 'model', 'remoteUrl', 'mode'] as const) {
    const v = s[key];
    if (v !== undefined && v !== null && typeof v !== 'string') {
      errors.push(`qcoder.${key} must be a string.`);
    }
  }
  const command = expandHome(text(s.path) ?? DEFAULT_PATH, home);
  const modelRaw = text(s.model);
  const model = modelRaw === undefined ? undefined : expandHome(modelRaw, home);
  const remote = text(s.remoteUrl);
  const modeRaw = text(s.mode);

  if (remote !== undefined && !/^https?:\/\/\S+$/.test(remote)) {
    errors.push(`qcoder.remoteUrl must be an http:// or https:// URL (got "${remote}").`);
  }
  if (model !== undefined && remote !== undefined) {
    errors.push('Set either qcoder.model or qcoder.remoteUrl, not both.');
  }
  let mode: Mode | undefined;
  if (modeRaw !== undefined) {
    if ((MODES as readonly string[]).includes(modeRaw)) {
      mode = modeRaw as Mode;
    } else {
      errors.push(`qcoder.mode must be one of ${MODES.join(', ')} (got "${modeRaw}").`);
    }
  }
  if (errors.length > 0) {
    return { ok: false, errors };
  }

  const args = ['lsp'];
  const initializationOptions: InitializationOptions = {};
  if (model !== undefined) {
    args.push('--model', model);
    initializationOptions.model = model;
  }
  if (remote !== undefined) {
    args.push('--remote', remote);
    initializationOptions.remote = remote;
  }
  if (mode !== undefined) {
    args.push('--mode', mode);
    initializationOptions.mode = mode;
  }
  return { ok: true, launch: { command, args, initializationOptions } };
}

/** True when a configuration change under one of these keys needs a server restart. */
export const RESTART_KEYS = ['qcoder.path', 'qcoder.model', 'qcoder.remoteUrl', 'qcoder.mode'] as const;
