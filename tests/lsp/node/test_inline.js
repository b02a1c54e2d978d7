// The REAL `qcoder lsp` (and the daemon it starts, scripted model) driven by Microsoft's
// vscode-languageserver-protocol 3.18.5 as a raw client: textDocument/inlineCompletion
// (LSP 3.18) returns the model's completion cut at the end of the block, with a range at
// the cursor in UTF-16 (an emoji before the cursor), and inserting it gives the expected
// text; the FIM prompt the model received (QCODER_SCRIPT_PROMPT_LOG) holds the repository
// name, the other open buffer, the files the repo map ranks near this one, and the
// buffer's prefix and suffix; $/cancelRequest on a slow completion answers -32800 at once.
// Run by tests/lsp/run_editor.sh (NODE_PATH has the npm packages).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const {
  createProtocolConnection, StreamMessageReader, StreamMessageWriter, InitializeRequest,
  InitializedNotification, DidOpenTextDocumentNotification, InlineCompletionRequest,
  InlineCompletionTriggerKind, ShutdownRequest, ExitNotification, CancellationTokenSource,
  LSPErrorCodes, RequestType0,
} = require('vscode-languageserver-protocol/node');

let count = 0;
let failed = 0;
function ok(cond, name, detail) {
  count++;
  if (cond) {
    console.log(`ok ${count} - ${name}`);
  } else {
    failed++;
    console.log(`not ok ${count} - ${name}`);
    if (detail !== undefined) console.log(`#   ${JSON.stringify(detail)}`);
  }
  return cond;
}

const tmp = process.env.QCODER_LSP_TEST_DIR;
const bin = process.env.QCODER_BIN;
const promptLog = process.env.QCODER_SCRIPT_PROMPT_LOG;
const ws = path.join(tmp, 'proj');
fs.mkdirSync(path.join(ws, 'src'), { recursive: true });
fs.writeFileSync(path.join(ws, 'AGENTS.md'), 'A tiny C project.\n');
// on disk main.c calls util_add: the repo map ranks util.h and util.c near it
fs.writeFileSync(path.join(ws, 'src/main.c'), '#include "util.h"\nint main(void) {\n  return util_add(0, 0);\n}\n');
fs.writeFileSync(path.join(ws, 'src/util.h'), 'int util_add(int a, int b);\n');
fs.writeFileSync(path.join(ws, 'src/util.c'), '#include "util.h"\nint util_add(int a, int b) { return a + b; }\n');
const script = path.join(tmp, 'script.json');
fs.writeFileSync(script, JSON.stringify([
  { raw: true, text: 'int y = util_add(1, 2);\n    return y;\n}\n\nint next(void) {\n    return 1;\n}\n' },
  { raw: true, delay_ms: 50, text: 'slow();    '.repeat(200) },
]));

function prompts() {
  if (!fs.existsSync(promptLog)) return [];
  return fs.readFileSync(promptLog, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

const uri = (p) => 'file://' + path.join(ws, p);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const child = spawn(bin, ['lsp', '--model', `script:${script}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const conn = createProtocolConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  conn.listen();

  const init = await conn.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri: 'file://' + ws,
    capabilities: { textDocument: { inlineCompletion: { dynamicRegistration: false } } },
  });
  ok(init.capabilities.inlineCompletionProvider === true, 'the server offers inlineCompletion (LSP 3.18)');
  await conn.sendNotification(InitializedNotification.type, {});
  await conn.sendNotification(DidOpenTextDocumentNotification.type, {
    textDocument: { uri: uri('src/other.c'), languageId: 'c', version: 1, text: 'int other_helper(void);\n' },
  });
  // the buffer being typed in (not saved): a line with an emoji, the cursor at its end
  const line1 = '    const char *s = "😀"; ';
  const text = `int main(void) {\n${line1}\n}\n`;
  await conn.sendNotification(DidOpenTextDocumentNotification.type, {
    textDocument: { uri: uri('src/main.c'), languageId: 'c', version: 1, text },
  });
  // wait for the repo map (built in the background), so the neighbours are deterministic
  const status = new RequestType0('qcoder/status');
  for (let i = 0; i < 200; i++) {
    const st = await conn.sendRequest(status);
    if (st.repoMap === 'ready') break;
    await sleep(50);
  }

  const before = prompts().length;
  const position = { line: 1, character: line1.length }; // JS strings count UTF-16 units
  const res = await conn.sendRequest(InlineCompletionRequest.type, {
    textDocument: { uri: uri('src/main.c') }, position,
    context: { triggerKind: InlineCompletionTriggerKind.Invoked },
  });
  const items = Array.isArray(res) ? res : res.items;
  ok(items.length === 1, 'one completion item', res);
  const item = items[0] || {};
  ok(item.insertText === 'int y = util_add(1, 2);\n    return y;',
    'cut at the end of the block (the next function is not offered)', item.insertText);
  ok(item.range && item.range.start.line === 1 && item.range.start.character === position.character
    && item.range.end.line === 1 && item.range.end.character === position.character,
  'the range is the cursor, in UTF-16 units', item.range);
  // insert it as an editor would
  const lines = text.split('\n');
  const r = item.range || { start: position, end: position };
  lines[1] = lines[1].slice(0, r.start.character) + item.insertText + lines[1].slice(r.end.character);
  ok(lines.join('\n') === `int main(void) {\n${line1}int y = util_add(1, 2);\n    return y;\n}\n`,
    'inserting the item gives the completed function', lines.join('\n'));

  const p = prompts().slice(before);
  ok(p.length === 1 && p[0].raw === true, 'the model got one raw (FIM) prompt', p.length);
  const fim = p.length ? p[0].prompt : '';
  ok(fim.startsWith('<|repo_name|>proj\n<|file_sep|>src/other.c\nint other_helper(void);\n'),
    'repository name, then the other open buffer', fim);
  ok(fim.includes('<|file_sep|>src/util.h\nint util_add(int a, int b);\n'), 'the repo map neighbour util.h', fim);
  ok(fim.includes('<|file_sep|>src/util.c\n#include "util.h"\n'), 'the repo map neighbour util.c', fim);
  ok(fim.endsWith(`<|file_sep|>src/main.c\n<|fim_prefix|>int main(void) {\n${line1}<|fim_suffix|>\n}\n<|fim_middle|>`),
    'the prefix and suffix of the unsaved buffer around the cursor', fim);

  // a slow completion, cancelled: $/cancelRequest → -32800 at once
  const cts = new CancellationTokenSource();
  const t0 = Date.now();
  const slow = conn.sendRequest(InlineCompletionRequest.type, {
    textDocument: { uri: uri('src/main.c') }, position,
    context: { triggerKind: InlineCompletionTriggerKind.Automatic },
  }, cts.token);
  await sleep(300);
  const tc = Date.now();
  cts.cancel();
  let err = null;
  try {
    await slow;
  } catch (e) {
    err = e;
  }
  ok(err && err.code === LSPErrorCodes.RequestCancelled, 'the cancelled completion answers -32800',
    err && { code: err.code, message: err.message });
  ok(Date.now() - tc < 1500, 'promptly', Date.now() - tc);
  ok(Date.now() - t0 < 5000, 'long before the slow answer would have ended', Date.now() - t0);

  await conn.sendRequest(ShutdownRequest.type);
  await conn.sendNotification(ExitNotification.type);
  const ex = await exited;
  ok(ex.code === 0, 'qcoder lsp exits with status 0 after shutdown and exit', ex);
  conn.dispose();
}

main().catch((e) => {
  ok(false, 'the test raised an error', String(e && e.stack ? e.stack : e));
}).finally(() => {
  console.log(`1..${count}`);
  process.exit(failed || count === 0 ? 1 : 0);
});
