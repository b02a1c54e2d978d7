// turn.test.mjs — one full prompt turn through `qcoder acp` with the official SDK client:
// a plan, tool calls, permission requests, file reads and writes through the client's
// buffers (unsaved changes seen, disk untouched), a command in the client's terminal,
// diff updates and end_turn; then cancellation mid-generation and during a permission
// request. Every message the daemon sends is checked against the ACP schema.
import { test, after } from "node:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { acp, assert, Daemon, Tap, spawnAgent, makeClient, newRecord, initialize, kinds, texts, call,
  assertNoSdkComplaints } from "./harness.mjs";

const d = new Daemon("turn");
after(() => d.stop());

test("a full turn: plan, fs through the editor's buffers, permission, terminal, diff, end_turn", async () => {
  const ws = d.workspace("ws-turn", { "notes.txt": "status: draft (on disk)\n" });
  const notes = join(ws, "notes.txt");
  const model = d.script("turn", [
    "I'll plan first.\n" + call("todo_write", { todos: [
      { content: "Read the notes", status: "in_progress", priority: "high" },
      { content: "Mark them final", status: "pending" }] }),
    call("read_file", { path: "notes.txt" }),
    "The buffer says draft; editing.\n" + call("edit_file", { path: "notes.txt", old_string: "draft (unsaved)", new_string: "final" }),
    call("run_command", { command: "echo hi-from-the-terminal" }),
    "All done: the notes are final.",
  ]);
  // the editor's buffer differs from the disk: the agent must see (and edit) the buffer
  const buffers = new Map([[notes, "status: draft (unsaved)\n"]]);
  const rec = newRecord();
  const tap = new Tap("turn");
  const app = makeClient(rec, {
    read: ({ params }) => { rec.reads.push(params.path); return { content: buffers.get(params.path) ?? readFileSync(params.path, "utf8") }; },
    write: ({ params }) => { rec.writes.push(params); buffers.set(params.path, params.content); return {}; },
  });
  const { child, stream } = spawnAgent(d, model, tap);
  const stop = await app.connectWith(stream, async (agent) => {
    const init = await initialize(agent);
    assert.equal(init.protocolVersion, 1);
    assert.equal(init.agentCapabilities.loadSession, true);
    assert.equal(init.agentCapabilities.promptCapabilities.embeddedContext, true);
    assert.deepEqual(init.authMethods, []);
    const s = await agent.request(acp.methods.agent.session.new, { cwd: ws, mcpServers: [] });
    assert.equal(s.modes.currentModeId, "ask", "editor sessions start in ask mode");
    assert.deepEqual(s.modes.availableModes.map((m) => m.id), ["read-only", "ask", "auto-edit", "full-auto"]);
    const r = await agent.request(acp.methods.agent.session.prompt,
      { sessionId: s.sessionId, prompt: [{ type: "text", text: "Mark the notes final" }] });
    return { r, sid: s.sessionId };
  });
  child.kill();
  assert.equal(stop.r.stopReason, "end_turn");
  const k = kinds(rec, stop.sid);
  for (const want of ["available_commands_update", "plan", "tool_call", "tool_call_update", "agent_message_chunk", "usage_update"])
    assert.ok(k.includes(want), `no ${want} update (got ${[...new Set(k)].join(", ")})`);
  const plan = rec.updates.find((u) => u.update.sessionUpdate === "plan").update;
  assert.deepEqual(plan.entries.map((e) => e.status), ["in_progress", "pending"]);
  assert.equal(plan.entries[0].priority, "high");

  // the read went through the editor and saw the unsaved buffer
  assert.ok(rec.reads.includes(notes), `fs/read_text_file of ${notes}: ${rec.reads}`);
  const readDone = rec.updates.find((u) => u.update.sessionUpdate === "tool_call_update" && u.update.status === "completed"
    && JSON.stringify(u.update.content || []).includes("draft (unsaved)"));
  assert.ok(readDone, "the model read the editor's unsaved buffer");
  // the edit asked first, then landed in the buffer, not on disk, with a diff update
  const perms = rec.permissions.map((p) => p.toolCall.kind);
  assert.deepEqual(perms, ["edit", "execute"], "permission asked for the edit and the command");
  assert.deepEqual(rec.permissions[0].options.map((o) => o.kind), ["allow_once", "allow_always", "reject_once", "reject_always"]);
  assert.equal(buffers.get(notes), "status: final\n");
  assert.equal(readFileSync(notes, "utf8"), "status: draft (on disk)\n", "the disk is the editor's business");
  const diff = rec.updates.flatMap((u) => u.update.content || []).find((c) => c.type === "diff");
  assert.ok(diff, "a diff update");
  assert.equal(diff.path, notes);
  assert.equal(diff.oldText, "status: draft (unsaved)\n");
  assert.equal(diff.newText, "status: final\n");
  // the command ran in the editor's terminal, shown in the tool call, then released
  assert.equal(rec.terminals.length, 1);
  assert.deepEqual(rec.terminals[0].args, ["-c", "echo hi-from-the-terminal"]);
  const termIds = rec.updates.flatMap((u) => u.update.content || []).filter((c) => c.type === "terminal").map((c) => c.terminalId);
  assert.ok(termIds.includes("term-1"), "terminal content in the tool call");
  assert.deepEqual(rec.released, ["term-1"]);
  const cmdDone = rec.updates.find((u) => u.update.sessionUpdate === "tool_call_update" && u.update.status === "completed"
    && JSON.stringify(u.update.content || []).includes("hi-from-the-terminal"));
  assert.ok(cmdDone, "the command's output reached the tool call");
  assert.ok(cmdDone.update.content.some((c) => c.type === "terminal"), "the terminal stays in the finished call");
  assert.match(texts(rec, stop.sid), /All done: the notes are final\./);
  tap.assertValid();
  assertNoSdkComplaints();
});

test("a tool call is shown (pending) as soon as it is parsed, while the reply still streams", async () => {
  const ws = d.workspace("ws-early", { "a.txt": "alpha\n", "b.txt": "beta\n" });
  const model = d.script("early", [
    { text: call("read_file", { path: "a.txt" }) + "\nNow the second file, written slowly.\n" + call("read_file", { path: "b.txt" }),
      delay_ms: 5 },
    "Both read.",
  ]);
  const rec = newRecord();
  const tap = new Tap("early");
  const app = makeClient(rec);
  const { child, stream } = spawnAgent(d, model, tap);
  const r = await app.connectWith(stream, async (agent) => {
    await initialize(agent);
    const s = await agent.request(acp.methods.agent.session.new, { cwd: ws, mcpServers: [] });
    const res = await agent.request(acp.methods.agent.session.prompt, { sessionId: s.sessionId, prompt: [{ type: "text", text: "read" }] });
    return { res, sid: s.sessionId };
  });
  child.kill();
  assert.equal(r.res.stopReason, "end_turn");
  const ups = rec.updates.filter((u) => u.sessionId === r.sid).map((u) => u.update);
  const calls = ups.map((u, i) => [u, i]).filter(([u]) => u.sessionUpdate === "tool_call");
  assert.equal(calls.length, 2);
  // the text the model wrote between the calls arrives between their announcements
  const between = ups.slice(calls[0][1] + 1, calls[1][1]).filter((u) => u.sessionUpdate === "agent_message_chunk")
    .map((u) => u.content.text).join("");
  assert.match(between, /Now the second file, written slowly\./,
    `call 1 is announced before the text after it: ${ups.map((u) => u.sessionUpdate).join(", ")}`);
  const firstUpdate = ups.findIndex((u) => u.sessionUpdate === "tool_call_update");
  assert.ok(calls[1][1] < firstUpdate, "both calls are announced before the first runs");
  for (const [c] of calls) {
    assert.equal(c.status, "pending");
    const mine = ups.filter((u) => u.sessionUpdate === "tool_call_update" && u.toolCallId === c.toolCallId);
    assert.deepEqual(mine.map((u) => u.status), ["in_progress", "completed"], `the updates of ${c.toolCallId}`);
  }
  tap.assertValid();
});

test("session/cancel mid-generation ends the turn as cancelled", async () => {
  const ws = d.workspace("ws-cancel", { "a.txt": "a\n" });
  const model = d.script("slow", [{ text: "This reply streams slowly so that it can be cancelled part way through.", delay_ms: 150 }]);
  const rec = newRecord();
  const tap = new Tap("cancel");
  const app = makeClient(rec);
  const { child, stream } = spawnAgent(d, model, tap);
  const r = await app.connectWith(stream, async (agent) => {
    await initialize(agent);
    const s = await agent.request(acp.methods.agent.session.new, { cwd: ws, mcpServers: [] });
    const p = agent.request(acp.methods.agent.session.prompt, { sessionId: s.sessionId, prompt: [{ type: "text", text: "go" }] });
    // wait for the first chunk, then cancel
    for (let i = 0; i < 100 && !kinds(rec, s.sessionId).includes("agent_message_chunk"); i++) await new Promise((res) => setTimeout(res, 50));
    const t0 = Date.now();
    await agent.notify(acp.methods.agent.session.cancel, { sessionId: s.sessionId });
    const res = await p;
    return { res, ms: Date.now() - t0 };
  });
  child.kill();
  assert.equal(r.res.stopReason, "cancelled");
  assert.ok(r.ms < 3000, `the turn stopped ${r.ms} ms after session/cancel`);
  tap.assertValid();
});

test("cancelling while a permission request is open: the call fails, the turn is cancelled", async () => {
  const ws = d.workspace("ws-cancel-perm", { "b.txt": "b\n" });
  const model = d.script("perm", [call("write_file", { path: "b.txt", content: "changed\n" }), "should not get here"]);
  const rec = newRecord();
  const tap = new Tap("cancel-perm");
  let release;
  const asked = new Promise((res) => { release = res; });
  const app = makeClient(rec, {
    permission: async ({ params }) => {
      rec.permissions.push(params);
      release();
      // a client answers a pending permission request "cancelled" after session/cancel
      await new Promise((res) => setTimeout(res, 300));
      return { outcome: { outcome: "cancelled" } };
    },
  });
  const { child, stream } = spawnAgent(d, model, tap);
  const r = await app.connectWith(stream, async (agent) => {
    await initialize(agent);
    const s = await agent.request(acp.methods.agent.session.new, { cwd: ws, mcpServers: [] });
    const p = agent.request(acp.methods.agent.session.prompt, { sessionId: s.sessionId, prompt: [{ type: "text", text: "change b" }] });
    await asked;
    await agent.notify(acp.methods.agent.session.cancel, { sessionId: s.sessionId });
    return { res: await p, sid: s.sessionId };
  });
  child.kill();
  assert.equal(r.res.stopReason, "cancelled");
  assert.equal(readFileSync(join(ws, "b.txt"), "utf8"), "b\n", "nothing was written");
  const last = rec.updates.filter((u) => u.update.sessionUpdate === "tool_call_update").pop();
  assert.equal(last.update.status, "failed");
  assert.ok(!texts(rec, r.sid).includes("should not get here"));
  tap.assertValid();
});
