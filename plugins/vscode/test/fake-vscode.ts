// FAKE `vscode` module for the activation smoke test (VS Code cannot run here). It records
// registered commands, messages and the status-bar item; any other API member is a dummy
// class, which is enough for vscode-languageclient's modules to load.

export const registered = new Map<string, (...args: unknown[]) => unknown>();
export const messages: { level: string; text: string }[] = [];
export const config: Record<string, unknown> = {};
export const statusItems: { text: string; tooltip: unknown; command: unknown; backgroundColor: unknown; shown: boolean }[] = [];

const disposable = { dispose: () => undefined };

const known: Record<string, unknown> = {
  registered, messages, config, statusItems,
  StatusBarAlignment: { Left: 1, Right: 2 },
  ThemeColor: class ThemeColor { constructor(public id: string) {} },
  window: {
    createOutputChannel: () => ({
      info: () => undefined, warn: () => undefined, error: () => undefined, trace: () => undefined,
      debug: () => undefined, appendLine: () => undefined, append: () => undefined, show: () => undefined,
      dispose: () => undefined,
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
  },
  commands: {
    registerCommand: (id: string, fn: (...args: unknown[]) => unknown) => {
      if (registered.has(id)) {
        throw new Error(`command '${id}' already exists`);
      }
      registered.set(id, fn);
      return { dispose: () => registered.delete(id) };
    },
    executeCommand: () => Promise.resolve(undefined),
  },
  workspace: {
    getConfiguration: () => ({ get: (key: string) => config[key] }),
    onDidChangeConfiguration: () => disposable,
    workspaceFolders: undefined,
  },
};

module.exports = new Proxy(known, {
  get(target, prop: string) {
    if (!(prop in target)) {
      target[prop] = class Dummy {};
    }
    return target[prop];
  },
});
