// The extension end to end in node: the real vscode-languageclient, our client.ts and
// extension.ts, a FAKE `vscode` module (test/fake-vscode.ts) and the FAKE language server
// of the plugin tests (tests/plugins/fake-lsp-server.mjs, standing in for `qcoder lsp` as
// qcoder.path). Checks what the server is started with, that commands send the contract's
// arguments and show each result once, cancellation, progress in the status bar and the
// inline completion middleware.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import Module from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

type Resolver = (request: string, ...rest: unknown[]) => string;
const M = Module as unknown as { _resolveFilename: Resolver };
const original = M._resolveFilename;
M._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
  return request === 'vscode' ? require.resolve('./fake-vscode') : original.call(this, request, ...rest);
};
/* eslint-disable @typescript-eslint/no-require-imports */
const fake = require('./fake-vscode') as typeof import('./fake-vscode');
const ext = require('../src/extension') as typeof import('../src/extension');
/* eslint-enable @typescript-eslint/no-require-imports */

const fakeServer = path.resolve(__dirname, '..', '..', '..', '..', 'tests', 'plugins', 'fake-lsp-server.mjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qcoder-vscode-'));
const tracePath = path.join(tmp, 'trace.jsonl');

interface Msg { id?: number | string; method?: string; params?: Record<string, unknown>; result?: unknown }
function trace(): { argv?: string[]; dir?: string; msg?: Msg }[] {
  if (!fs.existsSync(tracePath)) {
    return [];
  }
  return fs.readFileSync(tracePath, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { msg?: Msg });
}
const received = (method: string) => trace().filter((e) => e.dir === 'in' && e.msg?.method === method).map((e) => e.msg as Msg);

async function until(what: string, fn: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
const item = () => fake.statusItems[0];
const texts = () => fake.messages.map((m) => m.text);
const run = (command: string, arg?: unknown) => fake.registered.get(command)!(arg) as Promise<void>;

before(async () => {
  process.env.QCODER_FAKE_LSP_TRACE = tracePath;
  Object.assign(fake.config, { path: fakeServer, model: 'script:/tmp/s.json', remoteUrl: '', mode: 'full-auto' });
  ext.activate({ subscriptions: [] } as never);
  await until('the server to be ready', () => item()?.text === '$(sparkle) qcoder');
});

after(async () => {
  await ext.deactivate();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('the server is started with the settings as arguments and initializationOptions', () => {
  const t = trace();
  assert.deepEqual(t[0].argv, ['lsp', '--model', 'script:/tmp/s.json', '--mode', 'full-auto']);
  const init = received('initialize')[0].params as { initializationOptions: unknown; capabilities: Record<string, Record<string, unknown>> };
  assert.deepEqual(init.initializationOptions, { model: 'script:/tmp/s.json', mode: 'full-auto' });
  assert.deepEqual(init.capabilities.workspace.executeCommand, { dynamicRegistration: false });
  assert.ok(init.capabilities.textDocument.inlineCompletion, 'inlineCompletion announced');
  assert.equal((init.capabilities.window as { workDoneProgress?: boolean }).workDoneProgress, true);
  assert.ok(!fake.messages.some((m) => m.level === 'error'), JSON.stringify(fake.messages));
});

test('run and ask send the contract arguments; each result is shown once', async () => {
  await run('qcoder.run', { prompt: 'make it faster' });
  await run('qcoder.ask', { prompt: 'what is main?' });
  const calls = received('workspace/executeCommand').map((m) => m.params);
  assert.deepEqual(calls.slice(0, 2).map((p) => [p?.command, p?.arguments]), [
    ['qcoder.run', [{ prompt: 'make it faster' }]],
    ['qcoder.ask', [{ prompt: 'what is main?' }]],
  ]);
  assert.ok(typeof calls[0]?.workDoneToken === 'string', 'a workDoneToken is passed');
  await until('the announcements', () => texts().includes('ANSWER: what is main?'));
  assert.equal(texts().filter((t) => t === 'RAN: make it faster').length, 1, JSON.stringify(texts()));
  assert.equal(texts().filter((t) => t === 'ANSWER: what is main?').length, 1);
  const notifications = fake.progresses.filter((p) => p.location === 15); // ProgressLocation.Notification
  assert.deepEqual(notifications.slice(0, 2).map((p) => p.title), ['qcoder: run', 'qcoder: ask']);
  assert.equal(item().text, '$(sparkle) qcoder');
});

test('a code action argument is passed through as is', async () => {
  const arg = { uri: 'file:///p/a.c', range: { start: { line: 1, character: 2 }, end: { line: 1, character: 5 } } };
  await run('qcoder.explain', arg);
  const sent = received('workspace/executeCommand').filter((m) => m.params?.command === 'qcoder.explain');
  assert.deepEqual(sent[0].params?.arguments, [arg]);
  await until('the explanation', () => texts().includes('EXPLAINED 1:2-1:5'));
  assert.equal(texts().filter((t) => t === 'EXPLAINED 1:2-1:5').length, 1);
});

test('progress shows in the status bar; cancel sends $/cancelRequest', async () => {
  const done = run('qcoder.run', { prompt: 'slow' });
  await until('busy status with the progress', () => item().text === '$(loading~spin) qcoder: run — thinking (50%)');
  await run('qcoder.cancel');
  await done;
  const slow = received('workspace/executeCommand').find((m) => (m.params?.arguments as { prompt?: string }[])[0]?.prompt === 'slow');
  await until('$/cancelRequest', () => received('$/cancelRequest').some((m) => m.params?.id === slow?.id));
  assert.ok(texts().includes('qcoder: run cancelled.'), JSON.stringify(texts()));
  assert.equal(item().text, '$(sparkle) qcoder');
});

test('inline completion comes from the server through the normalising middleware', async () => {
  const reg = fake.registrations.find((r) => r.name === 'registerInlineCompletionItemProvider');
  assert.ok(reg, 'an inline completion provider is registered');
  const provider = reg.args[1] as { provideInlineCompletionItems: (...a: unknown[]) => Promise<{ insertText: unknown }[]> };
  const document = { uri: { toString: () => 'file:///p/a.c' }, languageId: 'c', version: 1 };
  const token = new fake.CancellationTokenSource().token;
  const items = await provider.provideInlineCompletionItems(document, new fake.Position(3, 4), { triggerKind: 0 }, token);
  assert.deepEqual(items.map((i) => i.insertText), ['<X>'], 'the empty and duplicate items are dropped');
  const req = received('textDocument/inlineCompletion')[0];
  assert.deepEqual(req.params?.position, { line: 3, character: 4 });
  assert.equal((req.params?.textDocument as { uri: string }).uri, 'file:///p/a.c');
});
