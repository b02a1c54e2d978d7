// harness.mjs — shared pieces of the ACP end-to-end tests: a private daemon per test file
// (its own runtime and state directories), `qcoder acp` processes driven by the official
// SDK (@agentclientprotocol/sdk 2.x), and a tap on both directions of every connection
// that validates each message the daemon sends against the SDK's own JSON schema
// (schema/v1/schema.json, JSON Schema 2020-12, with ajv).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import assert from "node:assert/strict";
import * as acp from "@agentclientprotocol/sdk";
import Ajv2020 from "ajv/dist/2020.js";

export { acp, assert };
const require = createRequire(import.meta.url);
export const HERE = dirname(fileURLToPath(import.meta.url));
export const QCODER = process.env.QCODER_BIN;
if (!QCODER) throw new Error("QCODER_BIN must name the qcoder binary");

// ---- schema validation ---------------------------------------------------------------

const schemaPath = require.resolve("@agentclientprotocol/sdk/schema/v1/schema.json");
const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
const SCHEMA_ID = schema.$id || "acp-v1";
ajv.addSchema({ ...schema, $id: SCHEMA_ID });
const compiled = new Map();
function def(name) {
  if (!compiled.has(name)) {
    const v = ajv.getSchema(`${SCHEMA_ID}#/$defs/${name}`);
    if (!v) throw new Error(`no $defs/${name} in the ACP schema`);
    compiled.set(name, v);
  }
  return compiled.get(name);
}
// The result type of each request a client sends, and the params type of each request
// and notification the agent sends.
const RESULT_OF = {
  initialize: "InitializeResponse", authenticate: "AuthenticateResponse",
  "session/new": "NewSessionResponse", "session/load": "LoadSessionResponse",
  "session/list": "ListSessionsResponse", "session/resume": "ResumeSessionResponse",
  "session/close": "CloseSessionResponse", "session/set_mode": "SetSessionModeResponse",
  "session/prompt": "PromptResponse",
};
const PARAMS_OF = {
  "session/update": "SessionNotification", "session/request_permission": "RequestPermissionRequest",
  "fs/read_text_file": "ReadTextFileRequest", "fs/write_text_file": "WriteTextFileRequest",
  "terminal/create": "CreateTerminalRequest", "terminal/output": "TerminalOutputRequest",
  "terminal/wait_for_exit": "WaitForTerminalExitRequest", "terminal/kill": "KillTerminalRequest",
  "terminal/release": "ReleaseTerminalRequest",
};

export class Tap {
  constructor(name) {
    this.name = name;
    this.sent = new Map();   // our request id -> method
    this.fromAgent = [];     // every message the daemon sent
    this.toAgent = [];
    this.errors = [];
  }
  outgoing(msg) {
    this.toAgent.push(msg);
    if (msg.method && msg.id !== undefined) this.sent.set(JSON.stringify(msg.id), msg.method);
  }
  incoming(msg) {
    this.fromAgent.push(msg);
    const bad = (what, v) => this.errors.push(`${what}: ${ajv.errorsText(v.errors)} in ${JSON.stringify(msg).slice(0, 400)}`);
    if (msg.jsonrpc !== "2.0") this.errors.push(`not JSON-RPC 2.0: ${JSON.stringify(msg).slice(0, 200)}`);
    if (msg.method) {
      const name = PARAMS_OF[msg.method];
      if (!name) { this.errors.push(`unexpected method from the agent: ${msg.method}`); return; }
      const v = def(name);
      if (!v(msg.params)) bad(`${msg.method} params (${name})`, v);
      return;
    }
    const method = this.sent.get(JSON.stringify(msg.id));
    if (msg.error) {
      const v = def("Error");
      if (!v(msg.error)) bad(`error answer to ${method}`, v);
      return;
    }
    if (!method) { this.errors.push(`answer to an unknown request id ${JSON.stringify(msg.id)}`); return; }
    const name = RESULT_OF[method];
    if (!name) return; // an extension method (_qcoder/…)
    const v = def(name);
    if (!v(msg.result)) bad(`${method} result (${name})`, v);
  }
  assertValid() {
    assert.deepEqual(this.errors, [], `${this.name}: messages that do not match the ACP schema`);
    assert.ok(this.fromAgent.length > 0, `${this.name}: the daemon sent nothing`);
  }
}

// Fail on the SDK's own complaint about invalid notifications (it drops them quietly).
const sdkComplaints = [];
const origError = console.error;
console.error = (...args) => {
  const text = args.map(String).join(" ");
  if (/Error handling (notification|request)/.test(text)) sdkComplaints.push(text);
  origError(...args);
};
export function assertNoSdkComplaints() {
  assert.deepEqual(sdkComplaints, [], "the SDK rejected messages from the daemon");
}

// ---- a private daemon ----------------------------------------------------------------

export class Daemon {
  constructor(name) {
    this.dir = mkdtempSync(join(tmpdir(), `qcoder-acp-${name}-`));
    this.rt = join(this.dir, "rt");
    this.st = join(this.dir, "st");
    this.asan = join(this.dir, "asan");
    mkdirSync(this.rt, { mode: 0o700 });
    mkdirSync(this.st);
    mkdirSync(this.asan);
    this.sock = join(this.rt, "qcoder.sock");
    this.env = { ...process.env, QCODER_RUNTIME_DIR: this.rt, QCODER_STATE_DIR: this.st, HOME: this.dir };
    // Under AddressSanitizer the daemon is detached: its reports go to files we check.
    if (process.env.ASAN_OPTIONS)
      this.env.ASAN_OPTIONS = `${process.env.ASAN_OPTIONS}:log_path=${join(this.asan, "asan")}`;
  }
  workspace(name, files = {}) {
    const ws = join(this.dir, name);
    mkdirSync(ws, { recursive: true });
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(dirname(join(ws, f)), { recursive: true });
      writeFileSync(join(ws, f), text);
    }
    return ws;
  }
  // A script for the scripted test double: the raw model output of each model call.
  script(name, replies) {
    const p = join(this.dir, `${name}.json`);
    writeFileSync(p, JSON.stringify(replies));
    return `script:${p}`;
  }
  acpArgs(model) {
    return ["acp", "--socket", this.sock, ...(model ? ["--model", model] : [])];
  }
  call(method, params = {}) {
    // one raw call on the socket through a tiny node client
    return new Promise((resolve, reject) => {
      import("node:net").then(({ createConnection }) => {
        const s = createConnection(this.sock);
        let buf = "";
        s.on("data", (d) => {
          buf += d;
          const nl = buf.indexOf("\n");
          if (nl >= 0) {
            s.end();
            const m = JSON.parse(buf.slice(0, nl));
            m.error ? reject(new Error(m.error.message)) : resolve(m.result);
          }
        });
        s.on("error", reject);
        s.write(JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) + "\n");
      });
    });
  }
  stop() {
    spawnSync(QCODER, ["stop", "--socket", this.sock], { env: this.env, stdio: "inherit", timeout: 30000 });
    const reports = readdirSync(this.asan);
    const text = reports.map((f) => readFileSync(join(this.asan, f), "utf8")).join("\n");
    if (!process.env.KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
    assert.equal(reports.length, 0, `the daemon's sanitizer reports:\n${text}`);
  }
  log() {
    try { return readFileSync(join(this.st, "daemon.log"), "utf8"); } catch { return ""; }
  }
}

// ---- an SDK client over `qcoder acp` ------------------------------------------------------

// Spawn `qcoder acp` and build an ndJson stream whose both directions go through a Tap.
export function spawnAgent(daemon, model, tap) {
  const child = spawn(QCODER, daemon.acpArgs(model), { env: daemon.env, stdio: ["pipe", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => { err += d; });
  child.stderrText = () => err;
  let pending = "";
  const fromAgent = new Readable({ read() {} });
  child.stdout.on("data", (d) => {
    pending += d;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!line.trim()) continue;
      let msg;
      try { msg = JSON.parse(line); } catch { tap.errors.push(`not JSON on stdout: ${line.slice(0, 200)}`); continue; }
      tap.incoming(msg);
      fromAgent.push(line + "\n");
    }
  });
  child.stdout.on("end", () => fromAgent.push(null));
  let outBuf = "";
  const toAgent = new Writable({
    write(chunk, enc, cb) {
      outBuf += chunk;
      let nl;
      while ((nl = outBuf.indexOf("\n")) >= 0) {
        const line = outBuf.slice(0, nl);
        outBuf = outBuf.slice(nl + 1);
        if (line.trim()) tap.outgoing(JSON.parse(line));
      }
      child.stdin.write(chunk, cb);
    },
    final(cb) { child.stdin.end(); cb(); },
  });
  const stream = acp.ndJsonStream(Writable.toWeb(toAgent), Readable.toWeb(fromAgent));
  return { child, stream };
}

// A client app with recording handlers. `hooks` may override any handler.
export function makeClient(rec, hooks = {}) {
  const m = acp.methods.client;
  const h = {
    update: ({ params }) => { rec.updates.push(params); },
    permission: ({ params }) => {
      rec.permissions.push(params);
      return { outcome: { outcome: "selected", optionId: "allow_once" } };
    },
    read: ({ params }) => { rec.reads.push(params.path); return { content: readFileSync(params.path, "utf8") }; },
    write: ({ params }) => { rec.writes.push(params); writeFileSync(params.path, params.content); return {}; },
    ...hooks,
  };
  const app = acp.client({ name: "qcoder-e2e" })
    .onNotification(m.session.update, h.update)
    .onRequest(m.session.requestPermission, h.permission)
    .onRequest(m.fs.readTextFile, h.read)
    .onRequest(m.fs.writeTextFile, h.write);
  const terms = new Map();
  let next = 1;
  app.onRequest(m.terminal.create, ({ params }) => {
    const id = `term-${next++}`;
    rec.terminals.push(params);
    const proc = spawn(params.command, params.args || [], { cwd: params.cwd, stdio: ["ignore", "pipe", "pipe"] });
    const t = { out: "", exit: null };
    t.done = new Promise((res) => proc.on("close", (code, signal) => { t.exit = { exitCode: code, signal }; res(); }));
    proc.stdout.on("data", (d) => { t.out += d; });
    proc.stderr.on("data", (d) => { t.out += d; });
    t.proc = proc;
    terms.set(id, t);
    return { terminalId: id };
  });
  app.onRequest(m.terminal.waitForExit, async ({ params }) => {
    const t = terms.get(params.terminalId);
    await t.done;
    return t.exit;
  });
  app.onRequest(m.terminal.output, ({ params }) => {
    const t = terms.get(params.terminalId);
    return { output: t.out, truncated: false, ...(t.exit ? { exitStatus: t.exit } : {}) };
  });
  app.onRequest(m.terminal.kill, ({ params }) => { terms.get(params.terminalId)?.proc.kill("SIGKILL"); return {}; });
  app.onRequest(m.terminal.release, ({ params }) => {
    rec.released.push(params.terminalId);
    terms.get(params.terminalId)?.proc.kill("SIGKILL");
    return {};
  });
  return app;
}

export function newRecord() {
  return { updates: [], permissions: [], reads: [], writes: [], terminals: [], released: [] };
}

export const FULL_CAPS = { fs: { readTextFile: true, writeTextFile: true }, terminal: true };

export async function initialize(agent, caps = FULL_CAPS) {
  return agent.request(acp.methods.agent.initialize, {
    protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: caps,
    clientInfo: { name: "qcoder-e2e", version: "0.1" },
  });
}

export const kinds = (rec, sid) =>
  rec.updates.filter((u) => !sid || u.sessionId === sid).map((u) => u.update.sessionUpdate);
export const texts = (rec, sid, kind = "agent_message_chunk") =>
  rec.updates.filter((u) => (!sid || u.sessionId === sid) && u.update.sessionUpdate === kind)
    .map((u) => u.update.content.text).join("");

// Model output helpers: one Qwen3-Coder tool call.
export function call(name, params) {
  let s = `<tool_call>\n<function=${name}>\n`;
  for (const [k, v] of Object.entries(params))
    s += `<parameter=${k}>\n${typeof v === "string" ? v : JSON.stringify(v)}\n</parameter>\n`;
  return s + "</function>\n</tool_call>";
}
