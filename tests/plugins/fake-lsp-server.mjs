#!/usr/bin/env node
// FAKE `qcoder lsp` for the editor-plugin tests. It is NOT qcoder: it speaks the LSP wire
// format (Content-Length framing) and answers the way docs/lsp-contract.md says the real
// server does, with canned results, so the plugins can be tested before and apart from the
// real server. Every message in either direction is appended to a JSONL trace that the
// tests read back to check what the plugin sent.
//
// Usage: node fake-lsp-server.mjs --trace FILE [any qcoder lsp arguments...]
//    or: QCODER_FAKE_LSP_TRACE=FILE fake-lsp-server.mjs lsp [...]   (as a stand-in binary)
// The first trace line is {"argv": [...], "cwd": ...}; then {"dir":"in"|"out", "msg": {...}}.
//
// Canned behaviour:
//   initialize              -> the contract's capabilities
//   textDocument/codeAction -> the three qcoder actions for the request's range/diagnostics
//   workspace/executeCommand:
//     progress (create + begin/report/end) when the client supports workDoneProgress;
//     qcoder.fix / qcoder.refactor: workspace/applyEdit replacing the range with
//       "FIXED" / "REFACTORED(<instruction>)", waits for the client's answer;
//     qcoder.explain -> {text:"EXPLAINED <line>:<char>-<line>:<char>"} (also showMessage);
//     qcoder.ask -> {text:"ANSWER: <prompt>"}; qcoder.run -> {summary:"RAN: <prompt>", ...};
//     a prompt "slow" is held until $/cancelRequest arrives, then fails with -32800.
//   textDocument/inlineCompletion -> {items:[{insertText:"<X>", range: empty at the position},
//                                    an empty item, the "<X>" item again]}
//   shutdown -> null; exit -> process exit 0.
import fs from 'node:fs';

const argv = process.argv.slice(2);
const ti = argv.indexOf('--trace');
const tracePath = ti >= 0 ? argv[ti + 1] : process.env.QCODER_FAKE_LSP_TRACE;
if (!tracePath) {
  process.stderr.write('fake-lsp-server: give --trace FILE or set QCODER_FAKE_LSP_TRACE\n');
  process.exit(2);
}
const serverArgs = ti >= 0 ? argv.slice(0, ti).concat(argv.slice(ti + 2)) : argv;
const trace = (obj) => fs.appendFileSync(tracePath, JSON.stringify(obj) + '\n');
trace({ argv: serverArgs, cwd: process.cwd() });

let nextId = 1;
const waiting = new Map();   // our request id -> resolve
const held = new Map();      // client request id -> () => void (cancel)
let clientCaps = {};

function send(msg) {
  msg.jsonrpc = '2.0';
  trace({ dir: 'out', msg });
  const body = Buffer.from(JSON.stringify(msg), 'utf8');
  process.stdout.write(`Content-Length: ${body.length}\r\n\r\n`);
  process.stdout.write(body);
}
const reply = (id, result) => send({ id, result });
const fail = (id, code, message) => send({ id, error: { code, message } });
const notify = (method, params) => send({ method, params });
function request(method, params) {
  const id = `fake-${nextId++}`;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    send({ id, method, params });
  });
}

const capabilities = {
  positionEncoding: 'utf-16',
  textDocumentSync: { openClose: true, change: 1, save: true },
  codeActionProvider: { codeActionKinds: ['quickfix', 'refactor.rewrite', 'qcoder.explain'] },
  executeCommandProvider: { commands: ['qcoder.fix', 'qcoder.explain', 'qcoder.refactor', 'qcoder.ask', 'qcoder.run'] },
  inlineCompletionProvider: true,
};

const pos = (p) => `${p.line}:${p.character}`;

async function executeCommand(id, params) {
  const command = params.command;
  const arg = (params.arguments || [])[0] || {};
  let token = null;
  if (clientCaps.window && clientCaps.window.workDoneProgress) {
    token = `progress-${id}`;
    await request('window/workDoneProgress/create', { token });
    notify('$/progress', { token, value: { kind: 'begin', title: `qcoder: ${command.replace(/^qcoder\./, '')}`, cancellable: true } });
    notify('$/progress', { token, value: { kind: 'report', message: 'thinking', percentage: 50 } });
  }
  const end = () => { if (token) notify('$/progress', { token, value: { kind: 'end' } }); };
  if (arg.prompt === 'slow') {
    await new Promise((resolve) => held.set(id, resolve));
    end();
    fail(id, -32800, 'cancelled');
    return;
  }
  let result;
  if (command === 'qcoder.fix' || command === 'qcoder.refactor') {
    const newText = command === 'qcoder.fix' ? 'FIXED' : `REFACTORED(${arg.instruction})`;
    const answer = await request('workspace/applyEdit', {
      label: command,
      edit: { changes: { [arg.uri]: [{ range: arg.range, newText }] } },
    });
    result = { summary: `${command} applied: ${answer && answer.applied}`, stopReason: 'end_turn', changedFiles: [arg.uri] };
  } else if (command === 'qcoder.explain') {
    result = { text: `EXPLAINED ${pos(arg.range.start)}-${pos(arg.range.end)}` };
  } else if (command === 'qcoder.ask') {
    result = { text: `ANSWER: ${arg.prompt}` };
  } else if (command === 'qcoder.run') {
    result = { summary: `RAN: ${arg.prompt}`, stopReason: 'end_turn', changedFiles: [] };
  } else {
    end();
    fail(id, -32602, `unknown command ${command}`);
    return;
  }
  end();
  notify('window/showMessage', { type: 3, message: result.text || result.summary });
  reply(id, result);
}

function codeActions(params) {
  const uri = params.textDocument.uri;
  const range = params.range;
  const diagnostics = (params.context && params.context.diagnostics) || [];
  return [
    { title: 'qcoder: fix', kind: 'quickfix', command: { title: 'qcoder: fix', command: 'qcoder.fix', arguments: [{ uri, range, diagnostics }] } },
    { title: 'qcoder: explain', kind: 'qcoder.explain', command: { title: 'qcoder: explain', command: 'qcoder.explain', arguments: [{ uri, range }] } },
    { title: 'qcoder: refactor…', kind: 'refactor.rewrite', command: { title: 'qcoder: refactor…', command: 'qcoder.refactor', arguments: [{ uri, range }] } },
  ];
}

function handle(msg) {
  trace({ dir: 'in', msg });
  if (msg.method === undefined) {           // a response to one of our requests
    const resolve = waiting.get(msg.id);
    if (resolve) { waiting.delete(msg.id); resolve(msg.result); }
    return;
  }
  const { id, method, params } = msg;
  switch (method) {
    case 'initialize':
      clientCaps = (params && params.capabilities) || {};
      reply(id, { capabilities, serverInfo: { name: 'fake-qcoder-lsp', version: '0' } });
      break;
    case 'textDocument/codeAction':
      reply(id, codeActions(params));
      break;
    case 'workspace/executeCommand':
      executeCommand(id, params);
      break;
    case 'textDocument/inlineCompletion':
      // The first usable item is "<X>"; an empty and a duplicate item follow, which
      // clients should drop.
      reply(id, { items: [
        { insertText: '<X>', range: { start: params.position, end: params.position } },
        { insertText: '' },
        { insertText: '<X>', range: { start: params.position, end: params.position } },
      ] });
      break;
    case '$/cancelRequest': {
      const resume = held.get(params.id);
      if (resume) { held.delete(params.id); resume(); }
      break;
    }
    case 'shutdown':
      reply(id, null);
      break;
    case 'exit':
      process.exit(0);
      break;
    default:
      if (id !== undefined) fail(id, -32601, `method not found: ${method}`);
  }
}

// Content-Length framing.
let buf = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  for (;;) {
    const sep = buf.indexOf('\r\n\r\n');
    if (sep < 0) return;
    const m = /Content-Length: *(\d+)/i.exec(buf.subarray(0, sep).toString('ascii'));
    if (!m) { process.stderr.write('fake-lsp-server: header without Content-Length\n'); process.exit(3); }
    const len = Number(m[1]);
    if (buf.length < sep + 4 + len) return;
    const body = buf.subarray(sep + 4, sep + 4 + len).toString('utf8');
    buf = buf.subarray(sep + 4 + len);
    handle(JSON.parse(body));
  }
});
process.stdin.on('end', () => process.exit(0));
