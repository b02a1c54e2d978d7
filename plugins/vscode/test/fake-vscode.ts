// FAKE `vscode` module for the activation smoke test (VS Code cannot run here). It records
// registered commands, messages and the status-bar item; any other API member is a dummy
// class, which is enough for vscode-languageclient's modules to load.

export const registered = new Map<string, (...args: unknown[]) => unknown>();
export const messages: { level: string; text: string }[] = [];
export const config: Record<string, unknown> = {};
export const statusItems: { text: string; tooltip: unknown; command: unknown; backgroundColor: unknown; shown: boolean }[] = [];

const disposable = { dispose: () => undefined };

class EventEmitter<T> {
  private listeners: ((e: T) => void)[] = [];
  event = (listener: (e: T) => void) => {
    this.listeners.push(listener);
    return { dispose: () => { this.listeners = this.listeners.filter((l) => l !== listener); } };
  };
  fire(e: T): void {
    for (const l of this.listeners) {
      l(e);
    }
  }
  dispose(): void {
    this.listeners = [];
  }
}

/** Every provider registered through a `register…` function: { name, args }. */
export const registrations: { name: string; args: unknown[] }[] = [];

// A namespace whose unknown `onDid…`/`onWill…` members are events that never fire and whose
// unknown `register…` functions record what was registered.
function namespace(members: Record<string, unknown>): Record<string, unknown> {
  return new Proxy(members, {
    get(target, prop: string) {
      if (!(prop in target)) {
        if (/^on[A-Z]/.test(prop)) {
          target[prop] = () => disposable;
        } else if (/^register[A-Z]/.test(prop)) {
          target[prop] = (...args: unknown[]) => {
            registrations.push({ name: prop, args });
            return disposable;
          };
        }
      }
      return target[prop];
    },
  });
}

class CodeActionKind {
  static readonly Empty = new CodeActionKind('');
  constructor(readonly value: string) {}
  append(part: string): CodeActionKind {
    return new CodeActionKind(this.value ? `${this.value}.${part}` : part);
  }
}
for (const [name, value] of [['QuickFix', 'quickfix'], ['Refactor', 'refactor'], ['RefactorExtract', 'refactor.extract'],
  ['RefactorInline', 'refactor.inline'], ['RefactorMove', 'refactor.move'], ['RefactorRewrite', 'refactor.rewrite'],
  ['Source', 'source'], ['SourceOrganizeImports', 'source.organizeImports'], ['SourceFixAll', 'source.fixAll'],
  ['Notebook', 'notebook']]) {
  (CodeActionKind as unknown as Record<string, CodeActionKind>)[name] = new CodeActionKind(value);
}

export class CancellationTokenSource {
  private readonly emitter = new EventEmitter<void>();
  readonly token = {
    isCancellationRequested: false,
    onCancellationRequested: (l: () => void) => this.emitter.event(l),
  };
  cancel(): void {
    if (!this.token.isCancellationRequested) {
      this.token.isCancellationRequested = true;
      this.emitter.fire();
    }
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class Position {
  constructor(readonly line: number, readonly character: number) {}
}
class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    this.start = typeof a === 'number' ? new Position(a, b as number) : a;
    this.end = typeof a === 'number' ? new Position(c as number, d as number) : b as Position;
  }
}
class InlineCompletionItem {
  constructor(readonly insertText: unknown, readonly range?: Range, readonly command?: unknown) {}
}
class InlineCompletionList {
  constructor(readonly items: InlineCompletionItem[]) {}
}
class SnippetString {
  constructor(readonly value: string) {}
}

/** Progress shown with window.withProgress: { title, location, reports }. withProgress runs the task with a token that
 * the test can cancel through `cancelProgress()`. */
export const progresses: { title: unknown; location: unknown; reports: unknown[] }[] = [];
const progressSources: CancellationTokenSource[] = [];
export function cancelProgress(): void {
  for (const s of progressSources) {
    s.cancel();
  }
}

const known: Record<string, unknown> = {
  registered, messages, config, statusItems, registrations, progresses, cancelProgress,
  EventEmitter, CodeActionKind, CancellationTokenSource, Position, Range, InlineCompletionItem,
  InlineCompletionList, SnippetString,
  ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
  ViewColumn: { Active: -1, Beside: -2 },
  version: '1.91.0',
  StatusBarAlignment: { Left: 1, Right: 2 },
  ThemeColor: class ThemeColor { constructor(public id: string) {} },
  languages: namespace({}),
  window: namespace({
    // An output channel: every method is a no-op, every onX an event, logLevel Info.
    createOutputChannel: () => new Proxy<Record<string, unknown>>({ logLevel: 3, name: 'qcoder' }, {
      get(target, prop: string) {
        if (!(prop in target)) {
          target[prop] = /^on[A-Z]/.test(prop) ? () => disposable : () => undefined;
        }
        return target[prop];
      },
    }),
    createStatusBarItem: () => {
      const item = { text: '', tooltip: undefined, command: undefined, backgroundColor: undefined, shown: false, name: '',
        show() { item.shown = true; }, hide() { item.shown = false; }, dispose: () => undefined };
      statusItems.push(item);
      return item;
    },
    showErrorMessage: (text: string) => { messages.push({ level: 'error', text }); return Promise.resolve(undefined); },
    showWarningMessage: (text: string) => { messages.push({ level: 'warning', text }); return Promise.resolve(undefined); },
    showInformationMessage: (text: string) => { messages.push({ level: 'info', text }); return Promise.resolve(undefined); },
    withProgress: <R>(opts: { title?: unknown; location?: unknown }, task: (p: { report(v: unknown): void }, t: unknown) => Thenable<R>) => {
      const record = { title: opts.title, location: opts.location, reports: [] as unknown[] };
      progresses.push(record);
      const source = new CancellationTokenSource();
      progressSources.push(source);
      return task({ report: (v: unknown) => record.reports.push(v) }, source.token);
    },
  }),
  commands: namespace({
    registerCommand: (id: string, fn: (...args: unknown[]) => unknown) => {
      if (registered.has(id)) {
        throw new Error(`command '${id}' already exists`);
      }
      registered.set(id, fn);
      return { dispose: () => registered.delete(id) };
    },
    executeCommand: () => Promise.resolve(undefined),
  }),
  workspace: namespace({
    getConfiguration: () => ({ get: (key: string) => config[key] }),
    workspaceFolders: undefined,
    textDocuments: [],
    notebookDocuments: [],
  }),
};

module.exports = new Proxy(known, {
  get(target, prop: string) {
    if (!(prop in target)) {
      target[prop] = class Dummy {};
    }
    return target[prop];
  },
});
