// extension.ts — the VS Code side of qcoder: starts `qcoder lsp` (client.ts), contributes
// the qcoder.* commands, keeps the status-bar item, shows results.
//
// This file is the glue that needs VS Code; every decision it makes is delegated to the
// pure modules that are unit-tested in node: settings.ts (settings → command line and
// initializationOptions), args.ts (editor selection → command argument), status.ts (the
// status-bar state machine), results.ts (result → message/document, once) and inline.ts.
//
// A command runs as one `workspace/executeCommand` request with a cancellable progress
// notification; cancelling sends `$/cancelRequest` (docs/lsp-contract.md). The server's
// `window/showMessage` announcements and the command results share one Announcer, so a
// result is not shown twice.

import * as os from 'node:os';
import * as vscode from 'vscode';
import {
  ExecuteCommandParams,
  ExecuteCommandRequest,
  ResponseError,
  ShowMessageNotification,
  State,
  WorkDoneProgress,
} from 'vscode-languageclient/node';
import {
  DiagnosticLike,
  DocumentLike,
  SelectionLike,
  askArgument,
  cleanPrompt,
  codeActionArgument,
  explainArgument,
  fixArgument,
  refactorArgument,
  runArgument,
} from './args';
import { QcoderLanguageClient, createClient } from './client';
import { Announcer, Level, messageLevel, presentResult } from './results';
import { RESTART_KEYS, serverLaunch } from './settings';
import { StatusEvent, StatusModel, renderStatus } from './status';

type QcoderCommand = 'qcoder.ask' | 'qcoder.fix' | 'qcoder.explain' | 'qcoder.refactor' | 'qcoder.run';
const COMMANDS: QcoderCommand[] = ['qcoder.ask', 'qcoder.fix', 'qcoder.explain', 'qcoder.refactor', 'qcoder.run'];
const STOP_TIMEOUT_MS = 3000; // shutdown/exit handshake before the server is killed

function documentLike(doc: vscode.TextDocument): DocumentLike {
  return { uri: doc.uri.toString(), lineCount: doc.lineCount, lineText: (n) => doc.lineAt(n).text };
}

function selectionLike(sel: vscode.Selection): SelectionLike {
  const p = (q: vscode.Position) => ({ line: q.line, character: q.character });
  return { start: p(sel.start), end: p(sel.end), active: p(sel.active) };
}

function diagnosticLike(d: vscode.Diagnostic): DiagnosticLike {
  const p = (q: vscode.Position) => ({ line: q.line, character: q.character });
  const code = typeof d.code === 'object' ? { value: d.code.value } : d.code;
  return { range: { start: p(d.range.start), end: p(d.range.end) }, message: d.message, severity: d.severity, source: d.source, code };
}

class Qcoder implements vscode.Disposable {
  private client: QcoderLanguageClient | undefined;
  private starting: Promise<boolean> | undefined;
  private readonly model = new StatusModel();
  private readonly announcer = new Announcer();
  private readonly running = new Set<vscode.CancellationTokenSource>();
  private seq = 0;

  constructor(private readonly output: vscode.LogOutputChannel, private readonly item: vscode.StatusBarItem) {
    this.status({ type: 'stopped' });
  }

  status(e: StatusEvent): void {
    const r = renderStatus(this.model.apply(e));
    this.item.text = r.text;
    this.item.tooltip = r.tooltip;
    this.item.backgroundColor = r.isError ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  private show(level: Level, message: string, extra?: string): void {
    const text = this.announcer.filter(message, extra);
    if (text === undefined) {
      return;
    }
    const show = level === 'error' ? vscode.window.showErrorMessage
      : level === 'warning' ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
    void show(text);
  }

  private workspaceRoot(): string | undefined {
    return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  }

  /** Start the server; resolves to false (with the status in error) when it cannot. */
  start(): Promise<boolean> {
    this.starting ??= this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(): Promise<boolean> {
    const cfg = vscode.workspace.getConfiguration('qcoder');
    const r = serverLaunch({ path: cfg.get('path'), model: cfg.get('model'), remoteUrl: cfg.get('remoteUrl'), mode: cfg.get('mode') },
      os.homedir());
    if (!r.ok) {
      const message = r.errors.join(' ');
      this.status({ type: 'error', message });
      void vscode.window.showErrorMessage(`qcoder: ${message}`, 'Open Settings').then((choice) => {
        if (choice) {
          void vscode.commands.executeCommand('workbench.action.openSettings', 'qcoder');
        }
      });
      return false;
    }
    const { launch } = r;
    this.output.info(`starting ${launch.command} ${launch.args.join(' ')}`);
    this.status({ type: 'starting' });
    const client = createClient(launch, {
      output: this.output,
      workspaceFolder: this.workspaceRoot(),
      onStatus: (e) => this.status(e),
    });
    client.onDidChangeState((e) => {
      if (client !== this.client) {
        return;
      }
      if (e.newState === State.Running) {
        this.status({ type: 'ready' });
      } else if (e.newState === State.Starting) {
        this.status({ type: 'starting' });
      } else if (e.newState === State.Stopped) {
        // stop() forgets the client first, so a stop seen here was not asked for.
        this.status({ type: 'error', message: 'the language server stopped (see the output).' });
      }
    });
    this.client = client;
    try {
      await client.start();
    } catch (err) {
      const message = `could not start "${launch.command} ${launch.args.join(' ')}": ${err instanceof Error ? err.message : String(err)}. Check qcoder.path.`;
      this.output.error(message);
      this.status({ type: 'error', message });
      this.client = undefined;
      return false;
    }
    // The server announces results with showMessage; route them through the Announcer so
    // a result is shown once (replaces the client's default handler).
    client.onNotification(ShowMessageNotification.type, (p) => this.show(messageLevel(p.type), p.message));
    this.status({ type: 'ready' });
    return true;
  }

  async stop(): Promise<void> {
    for (const source of this.running) {
      source.cancel();
    }
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(STOP_TIMEOUT_MS);
      } catch (err) {
        this.output.warn(`stopping the server: ${String(err)}`);
      }
      await client.dispose(STOP_TIMEOUT_MS).catch(() => undefined);
    }
    this.status({ type: 'stopped' });
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  cancelAll(): void {
    if (this.running.size === 0) {
      void vscode.window.showInformationMessage('qcoder: nothing to cancel.');
    }
    for (const source of this.running) {
      source.cancel();
    }
  }

  private async readyClient(): Promise<QcoderLanguageClient | undefined> {
    if (!this.client || this.client.state === State.Stopped) {
      if (!(await this.start())) {
        void vscode.window.showErrorMessage('qcoder: the language server is not running.', 'Show Output').then((c) => {
          if (c) {
            this.output.show(true);
          }
        });
        return undefined;
      }
    } else if (this.starting) {
      await this.starting;
    }
    if (this.client?.state === State.Running) {
      return this.client;
    }
    void vscode.window.showWarningMessage('qcoder: the language server is not ready yet; try again in a moment.');
    return undefined;
  }

  private editorFor(name: string): vscode.TextEditor | undefined {
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.document.uri.scheme !== 'file') {
      void vscode.window.showWarningMessage(`qcoder: open a saved file to ${name} its code.`);
      return undefined;
    }
    return editor;
  }

  /** The command's argument: from a code action, a keybinding's args, or the editor. */
  private async argumentFor(command: QcoderCommand, passed: unknown): Promise<object | undefined> {
    const fromAction = codeActionArgument(passed);
    const passedPrompt = cleanPrompt((passed as { prompt?: unknown } | undefined)?.prompt as string | undefined);
    switch (command) {
      case 'qcoder.fix': {
        if (fromAction) {
          return fromAction;
        }
        const editor = this.editorFor('fix');
        if (!editor) {
          return undefined;
        }
        const diagnostics = vscode.languages.getDiagnostics(editor.document.uri).map(diagnosticLike);
        return fixArgument(documentLike(editor.document), selectionLike(editor.selection), diagnostics);
      }
      case 'qcoder.explain': {
        if (fromAction) {
          return fromAction;
        }
        const editor = this.editorFor('explain');
        return editor && explainArgument(documentLike(editor.document), selectionLike(editor.selection));
      }
      case 'qcoder.refactor': {
        let target: { uri: string; range: object } | undefined = fromAction;
        if (!target) {
          const editor = this.editorFor('refactor');
          if (!editor) {
            return undefined;
          }
          target = refactorArgument(documentLike(editor.document), selectionLike(editor.selection), '');
        }
        const given = typeof fromAction?.instruction === 'string' ? cleanPrompt(fromAction.instruction) : undefined;
        const instruction = given ?? cleanPrompt(await vscode.window.showInputBox({
          title: 'qcoder: refactor',
          prompt: 'How should the selection be rewritten?',
          placeHolder: 'e.g. extract the loop body into a function',
        }));
        return instruction ? { ...target, instruction } : undefined;
      }
      case 'qcoder.ask': {
        const prompt = passedPrompt ?? cleanPrompt(await vscode.window.showInputBox({
          title: 'qcoder: ask', prompt: 'Ask about the code (the selection is sent along)',
        }));
        if (!prompt) {
          return undefined;
        }
        const editor = vscode.window.activeTextEditor;
        if (editor && editor.document.uri.scheme === 'file') {
          return askArgument(prompt, documentLike(editor.document), selectionLike(editor.selection));
        }
        return askArgument(prompt);
      }
      case 'qcoder.run': {
        const prompt = passedPrompt ?? cleanPrompt(await vscode.window.showInputBox({
          title: 'qcoder: run', prompt: 'A task for the agent on the whole workspace',
        }));
        return prompt ? runArgument(prompt) : undefined;
      }
    }
  }

  async runCommand(command: QcoderCommand, passed: unknown): Promise<void> {
    const arg = await this.argumentFor(command, passed);
    if (!arg) {
      return;
    }
    const client = await this.readyClient();
    if (!client) {
      return;
    }
    const name = command.replace(/^qcoder\./, '');
    const opId = `command:${++this.seq}`;
    const workDoneToken = `qcoder-vscode-${process.pid}-${this.seq}`;
    this.status({ type: 'begin', id: opId, title: `qcoder: ${name}` });
    const source = new vscode.CancellationTokenSource();
    this.running.add(source);
    try {
      await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `qcoder: ${name}`, cancellable: true },
        async (progress, cancel) => {
          const link = cancel.onCancellationRequested(() => source.cancel());
          // Progress on the token we pass (when the server uses it rather than creating one).
          const sub = client.onProgress(WorkDoneProgress.type, workDoneToken, (v) => {
            if (v.kind !== 'end' && v.message) {
              progress.report({ message: v.message });
            }
          });
          try {
            const params: ExecuteCommandParams = { command, arguments: [arg], workDoneToken };
            const result: unknown = await client.sendRequest(ExecuteCommandRequest.type, params, source.token);
            this.output.info(`${command} → ${JSON.stringify(result)}`);
            await this.present(command, undefined, result);
          } catch (err) {
            const e = err instanceof ResponseError ? { code: err.code, message: err.message }
              : { message: err instanceof Error ? err.message : String(err) };
            this.output.warn(`${command} failed: ${e.message}`);
            await this.present(command, e, undefined);
          } finally {
            sub.dispose();
            link.dispose();
          }
        });
    } finally {
      this.running.delete(source);
      source.dispose();
      this.status({ type: 'end', id: opId });
    }
  }

  private async present(command: string, error: { code?: number; message?: string } | undefined, result: unknown): Promise<void> {
    const p = presentResult(command, error, result, this.workspaceRoot());
    if (p.document !== undefined) {
      this.announcer.filter(p.message); // the server's toast of the same text is now redundant
      const doc = await vscode.workspace.openTextDocument({ content: p.document, language: 'markdown' });
      await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
      return;
    }
    this.show(p.level, p.message, p.extra);
  }

  dispose(): void {
    void this.stop();
  }
}

let qcoder: Qcoder | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('qcoder', { log: true });
  const item = vscode.window.createStatusBarItem('qcoder.status', vscode.StatusBarAlignment.Right, 100);
  item.name = 'qcoder';
  item.command = 'qcoder.showOutput';
  item.show();
  qcoder = new Qcoder(output, item);
  const q = qcoder;
  context.subscriptions.push(output, item, q);
  for (const command of COMMANDS) {
    context.subscriptions.push(vscode.commands.registerCommand(command, (arg?: unknown) => q.runCommand(command, arg)));
  }
  context.subscriptions.push(
    vscode.commands.registerCommand('qcoder.cancel', () => q.cancelAll()),
    vscode.commands.registerCommand('qcoder.restart', () => q.restart()),
    vscode.commands.registerCommand('qcoder.showOutput', () => output.show(true)),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (RESTART_KEYS.some((k) => e.affectsConfiguration(k))) {
        void q.restart();
      }
    }),
  );
  void q.start(); // activation does not wait for the server; commands wait for it
}

export async function deactivate(): Promise<void> {
  await qcoder?.stop();
  qcoder = undefined;
}
