// client.ts — the vscode-languageclient LanguageClient for `qcoder lsp`.
//
// vscode-languageclient 11 wires most of what the contract needs by itself: text
// document sync (the daemon sees unsaved buffers), code actions, `workspace/applyEdit`
// (VS Code's undo works), server-created `$/progress` (shown in the window's progress
// area) and LSP 3.18 `textDocument/inlineCompletion` (its InlineCompletionItemFeature
// registers a VS Code InlineCompletionItemProvider). Two things are changed here:
//
// - Its ExecuteCommandFeature would register every server command (`qcoder.fix`, …) as a
//   VS Code command. The extension contributes those ids itself — palette entries that
//   build the argument from the editor, with cancellation, a status-bar state and result
//   display — so the client must not register them again (VS Code refuses duplicate ids).
//   The feature is left out and a small static feature still announces
//   `workspace.executeCommand` in the client capabilities. Code actions keep working:
//   VS Code runs the action's command id, which is ours.
// - Middleware feeds every `$/progress` to the status bar and passes inline completion
//   results through normalizeInlineItems.

import {
  ClientCapabilities,
  ExecuteCommandRequest,
  Executable,
  FeatureState,
  LanguageClient,
  LanguageClientOptions,
  StaticFeature,
} from 'vscode-languageclient/node';
import type { LogOutputChannel } from 'vscode';
import { normalizeInlineItems } from './inline';
import type { ServerLaunch } from './settings';
import { StatusEvent, progressEvent } from './status';

type AnyFeature = Parameters<LanguageClient['registerFeature']>[0];

class ExecuteCommandCapability implements StaticFeature {
  fillClientCapabilities(capabilities: ClientCapabilities): void {
    capabilities.workspace = capabilities.workspace ?? {};
    capabilities.workspace.executeCommand = { dynamicRegistration: false };
  }
  initialize(): void {
    // nothing to set up: the extension's own commands send workspace/executeCommand
  }
  getState(): FeatureState {
    return { kind: 'static' };
  }
  clear(): void {
    // no state
  }
}

export class QcoderLanguageClient extends LanguageClient {
  // Called from the base constructor for each built-in feature: no instance fields here.
  public override registerFeature(feature: AnyFeature): void {
    const method = (feature as { registrationType?: { method?: string } }).registrationType?.method;
    if (method === ExecuteCommandRequest.method) {
      super.registerFeature(new ExecuteCommandCapability());
      return;
    }
    super.registerFeature(feature);
  }
}

export interface ClientHooks {
  output: LogOutputChannel;
  workspaceFolder?: string;
  onStatus: (e: StatusEvent) => void;
}

export function createClient(launch: ServerLaunch, hooks: ClientHooks): QcoderLanguageClient {
  const server: Executable = {
    command: launch.command,
    args: launch.args,
    options: hooks.workspaceFolder ? { cwd: hooks.workspaceFolder } : {},
  };
  const options: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file' }],
    outputChannel: hooks.output,
    initializationOptions: launch.initializationOptions,
    middleware: {
      handleWorkDoneProgress: (token, params, next) => {
        hooks.onStatus(progressEvent(token, params));
        next(token, params);
      },
      provideInlineCompletionItems: async (document, position, context, token, next) =>
        normalizeInlineItems(await next(document, position, context, token)),
    },
  };
  return new QcoderLanguageClient('qcoder', 'qcoder', server, options);
}
