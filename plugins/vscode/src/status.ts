// status.ts — the status-bar item's state machine, pure so it is unit-tested in node.
//
// Two things combine into what the item shows: the server's life cycle (starting → ready,
// or error / stopped) and the work in flight (our executeCommand requests and the server's
// `$/progress` tokens), each an "operation" with a title and optional message/percentage.
// While the server is ready and any operation runs, the item is busy and shows the most
// recently started one; an error stays until the server starts again. Events that do not
// fit the current state (progress for an unknown token, `ready` while stopped) are ignored,
// so a misbehaving server cannot put the item in an impossible state.

export type Phase = 'stopped' | 'starting' | 'ready' | 'error';

export type StatusEvent =
  | { type: 'starting' }
  | { type: 'ready' }
  | { type: 'stopped' }
  | { type: 'error'; message: string }
  | { type: 'begin'; id: string; title: string; message?: string; percentage?: number }
  | { type: 'report'; id: string; message?: string; percentage?: number }
  | { type: 'end'; id: string };

/** A `$/progress` value (WorkDoneProgressBegin | Report | End), structurally. */
export type ProgressValue =
  | { kind: 'begin'; title: string; message?: string; percentage?: number }
  | { kind: 'report'; message?: string; percentage?: number }
  | { kind: 'end'; message?: string };

/** The status event for one `$/progress` value, keyed by its token. */
export function progressEvent(token: string | number, v: ProgressValue): StatusEvent {
  const id = `progress:${String(token)}`;
  switch (v.kind) {
    case 'begin':
      return { type: 'begin', id, title: v.title, message: v.message, percentage: v.percentage };
    case 'report':
      return { type: 'report', id, message: v.message, percentage: v.percentage };
    case 'end':
      return { type: 'end', id };
  }
}

export type StatusView =
  | { kind: 'stopped' }
  | { kind: 'starting' }
  | { kind: 'ready' }
  | { kind: 'busy'; title: string; message?: string; percentage?: number; count: number }
  | { kind: 'error'; message: string };

interface Operation {
  title: string;
  message?: string;
  percentage?: number;
}

const MAX_OPERATIONS = 64; // a server that never ends its progress cannot grow this without bound

export class StatusModel {
  private phase: Phase = 'stopped';
  private errorMessage = '';
  private readonly ops = new Map<string, Operation>(); // insertion order = start order

  apply(e: StatusEvent): StatusView {
    switch (e.type) {
      case 'starting':
        this.phase = 'starting';
        this.ops.clear();
        break;
      case 'ready':
        if (this.phase === 'starting') {
          this.phase = 'ready';
        }
        break;
      case 'stopped':
        if (this.phase !== 'error') {
          this.phase = 'stopped';
        }
        this.ops.clear();
        break;
      case 'error':
        this.phase = 'error';
        this.errorMessage = e.message;
        this.ops.clear();
        break;
      case 'begin':
        if (this.phase === 'ready') {
          this.ops.delete(e.id);
          if (this.ops.size >= MAX_OPERATIONS) {
            const oldest = this.ops.keys().next().value;
            if (oldest !== undefined) {
              this.ops.delete(oldest);
            }
          }
          this.ops.set(e.id, { title: e.title, message: e.message, percentage: clampPercentage(e.percentage) });
        }
        break;
      case 'report': {
        const op = this.ops.get(e.id);
        if (op) {
          if (e.message !== undefined) {
            op.message = e.message;
          }
          if (e.percentage !== undefined) {
            op.percentage = clampPercentage(e.percentage);
          }
        }
        break;
      }
      case 'end':
        this.ops.delete(e.id);
        break;
    }
    return this.view();
  }

  view(): StatusView {
    switch (this.phase) {
      case 'stopped':
        return { kind: 'stopped' };
      case 'starting':
        return { kind: 'starting' };
      case 'error':
        return { kind: 'error', message: this.errorMessage };
      case 'ready': {
        if (this.ops.size === 0) {
          return { kind: 'ready' };
        }
        const last = [...this.ops.values()][this.ops.size - 1];
        return { kind: 'busy', title: last.title, message: last.message, percentage: last.percentage, count: this.ops.size };
      }
    }
  }
}

function clampPercentage(p: number | undefined): number | undefined {
  if (typeof p !== 'number' || !Number.isFinite(p)) {
    return undefined;
  }
  return Math.min(100, Math.max(0, Math.round(p)));
}

export interface StatusRendering {
  text: string;
  tooltip: string;
  isError: boolean;
}

const MAX_TEXT = 48; // the status bar is shared; longer titles are cut with an ellipsis

function cut(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, n - 1) + '…';
}

/** Text (with codicons), tooltip and error flag of the status-bar item. */
export function renderStatus(v: StatusView): StatusRendering {
  const click = 'Click to show the qcoder output.';
  switch (v.kind) {
    case 'stopped':
      return { text: '$(circle-slash) qcoder', tooltip: `qcoder: the language server is not running. ${click}`, isError: false };
    case 'starting':
      return { text: '$(sync~spin) qcoder', tooltip: `qcoder: starting the language server… ${click}`, isError: false };
    case 'ready':
      return { text: '$(sparkle) qcoder', tooltip: `qcoder: ready. ${click}`, isError: false };
    case 'error':
      return { text: '$(error) qcoder', tooltip: `qcoder: ${v.message} ${click}`, isError: true };
    case 'busy': {
      let detail = v.title;
      if (v.message) {
        detail += ` — ${v.message}`;
      }
      if (v.percentage !== undefined) {
        detail += ` (${v.percentage}%)`;
      }
      const more = v.count > 1 ? ` (+${v.count - 1} more)` : '';
      return {
        text: `$(loading~spin) ${cut(detail, MAX_TEXT)}`,
        tooltip: `qcoder: ${detail}${more}. Run "qcoder: Cancel Running Requests" to stop. ${click}`,
        isError: false,
      };
    }
  }
}
