// results.ts — how a command's result is shown, pure so it is unit-tested in node.
//
// Results (docs/lsp-contract.md): `{text}` for ask/explain, `{summary, stopReason,
// changedFiles}` for fix/refactor/run, or an LSP error. The server also announces each
// result with `window/showMessage`; both go through one Announcer, which shows a text once
// even when the result and the announcement arrive in either order. Long texts (an
// explanation) open in a Markdown document beside the editor instead of a toast.

export type Level = 'info' | 'warning' | 'error';

export interface Presentation {
  level: Level;
  /** The main text (deduplicated against the server's announcement). */
  message: string;
  /** Extra facts shown even when the main text was already announced. */
  extra?: string;
  /** A text long enough to deserve a document of its own. */
  document?: string;
}

export const REQUEST_CANCELLED = -32800;
const LONG_TEXT = 200; // characters; beyond this (or several lines) a toast is unreadable

export interface ResponseErrorLike {
  code?: number;
  message?: string;
}

export function commandName(command: string): string {
  return command.replace(/^qcoder\./, '');
}

function fileLabel(f: unknown, workspaceRoot?: string): string | undefined {
  let s: unknown = f;
  if (typeof f === 'object' && f !== null) {
    const o = f as { uri?: unknown; path?: unknown };
    s = o.uri ?? o.path;
  }
  if (typeof s !== 'string' || s === '') {
    return undefined;
  }
  if (s.startsWith('file://')) {
    try {
      s = decodeURIComponent(new URL(s).pathname);
    } catch {
      return s as string;
    }
  }
  const p = s as string;
  if (workspaceRoot) {
    const root = workspaceRoot.replace(/\/+$/, '') + '/';
    if (p.startsWith(root)) {
      return p.slice(root.length);
    }
  }
  return p;
}

/** How to show the outcome of `command` (an error or a result). */
export function presentResult(command: string, error: ResponseErrorLike | undefined, result: unknown,
  workspaceRoot?: string): Presentation {
  const name = commandName(command);
  if (error) {
    if (error.code === REQUEST_CANCELLED) {
      return { level: 'warning', message: `qcoder: ${name} cancelled.` };
    }
    return { level: 'error', message: `qcoder: ${name} failed: ${error.message ?? 'unknown error'}` };
  }
  if (typeof result !== 'object' || result === null) {
    return { level: 'info', message: `qcoder: ${name} done.` };
  }
  const r = result as { text?: unknown; summary?: unknown; stopReason?: unknown; changedFiles?: unknown };
  if (typeof r.text === 'string') {
    const long = r.text.length > LONG_TEXT || r.text.trim().includes('\n');
    return long ? { level: 'info', message: r.text, document: r.text } : { level: 'info', message: r.text };
  }
  const stop = typeof r.stopReason === 'string' ? r.stopReason : undefined;
  const level: Level = stop === 'error' ? 'error' : stop !== undefined && stop !== 'end_turn' ? 'warning' : 'info';
  const extra: string[] = [];
  if (stop !== undefined && stop !== 'end_turn') {
    extra.push(`${name} stopped: ${stop}`);
  }
  const files = Array.isArray(r.changedFiles)
    ? r.changedFiles.map((f) => fileLabel(f, workspaceRoot)).filter((f): f is string => f !== undefined)
    : [];
  if (files.length > 0) {
    extra.push(`changed: ${files.join(', ')}`);
  }
  const p: Presentation = {
    level,
    message: typeof r.summary === 'string' && r.summary.trim() !== '' ? r.summary : `qcoder: ${name} done.`,
  };
  if (extra.length > 0) {
    p.extra = extra.join('; ');
  }
  return p;
}

/** LSP MessageType (1 Error, 2 Warning, 3 Info, 4 Log, 5 Debug) → level. */
export function messageLevel(type: number): Level {
  return type === 1 ? 'error' : type === 2 ? 'warning' : 'info';
}

const ANNOUNCE_WINDOW_MS = 10_000; // a result and the server's showMessage for it arrive within this

/**
 * Shows each result once: `filter` returns the text to show now (the main text unless one
 * containing it, or contained in it, was shown within the window; plus `extra`), or
 * undefined when there is nothing new. A shown text hides one repeat only (the pair is then
 * used up), so the same result of a second request is shown again.
 */
export class Announcer {
  private recent: { text: string; at: number }[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  filter(message: string, extra?: string): string | undefined {
    const t = this.now();
    this.recent = this.recent.filter((a) => t - a.at <= ANNOUNCE_WINDOW_MS);
    const key = message.trim();
    let seen = false;
    if (key !== '') {
      const i = this.recent.findIndex((a) => a.text.includes(key) || key.includes(a.text));
      seen = i >= 0;
      if (seen) {
        this.recent.splice(i, 1);
      } else {
        this.recent.push({ text: key, at: t });
      }
    }
    const parts: string[] = [];
    if (!seen && key !== '') {
      parts.push(key);
    }
    if (extra) {
      parts.push(extra);
    }
    return parts.length > 0 ? parts.join(' — ') : undefined;
  }
}
