// session.test.mjs — sessions across clients (session/list, load with its replay, resume,
// set_mode, close), prompt content blocks, errors, and the slash commands /checkpoint,
// /test, /undo and /compact, all with the SDK client and schema checks.
import { test, after } from "node:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { acp, assert, Daemon, Tap, spawnAgent, makeClient, newRecord, initialize, kinds, texts, call,
  assertNoSdkComplaints } from "./harness.mjs";

const d = new Daemon("session");
after(() => d.stop());

// Run `op(agent, rec)` with a fresh `qcoder acp` client.
async function withClient(name, model, op, caps) {
  const rec = newRecord();
  const tap = new Tap(name);
  const app = makeClient(rec);
  const { child, stream } = spawnAgent(d, model, tap);
  try {
    return await app.connectWith(stream, async (agent) => {
      await initialize(agent, caps);
      return op(agent, rec);
    });
  } finally {
    child.kill();
    await new Promise((res) => child.once("exit", res));
    tap.assertValid();
  }
}

const rpcCode = async (p) => { try { await p; return 0; } catch (e) { return e.code; } };

test("list, load (replayed), set_mode, resume and close across clients; content blocks; errors", async () => {
  const ws = d.workspace("ws-sess", { "f.txt": "content of f\n" });
  const model = d.script("sess", [call("read_file", { path: "f.txt" }), "first answer", "second answer"]);
  const m = acp.methods.agent;
  const sid = await withClient("first", model, async (agent, rec) => {
    const s = await agent.request(m.session.new, { cwd: ws, mcpServers: [] });
    const r = await agent.request(m.session.prompt, { sessionId: s.sessionId, prompt: [
      { type: "text", text: "explain the file" },
      { type: "resource", resource: { uri: "file:///spec/notes.md", mimeType: "text/markdown", text: "EMBEDDED-NOTE" } },
      { type: "resource_link", uri: "file:///spec/other.md", name: "other.md" }] });
    assert.equal(r.stopReason, "end_turn");
    assert.match(texts(rec, s.sessionId), /first answer/);
    // errors: bad cwd, image content, unknown session
    assert.equal(await rpcCode(agent.request(m.session.new, { cwd: "relative/dir", mcpServers: [] })), -32602);
    assert.equal(await rpcCode(agent.request(m.session.new, { cwd: join(ws, "missing"), mcpServers: [] })), -32602);
    assert.equal(await rpcCode(agent.request(m.session.prompt, { sessionId: s.sessionId,
      prompt: [{ type: "image", data: "iVBORw0KGgo=", mimeType: "image/png" }] })), -32602);
    assert.equal(await rpcCode(agent.request(m.session.prompt, { sessionId: "no-such-session",
      prompt: [{ type: "text", text: "hi" }] })), -32002);
    // set_mode: current_mode_update with currentModeId
    await agent.request(m.session.setMode, { sessionId: s.sessionId, modeId: "auto-edit" });
    await new Promise((res) => setTimeout(res, 100));
    const cm = rec.updates.find((u) => u.update.sessionUpdate === "current_mode_update");
    assert.equal(cm?.update.currentModeId, "auto-edit");
    assert.equal(await rpcCode(agent.request(m.session.setMode, { sessionId: s.sessionId, modeId: "yolo-plus" })), -32602);
    return s.sessionId;
  });

  // a second client: list, then load with the history replayed before the answer
  await withClient("second", model, async (agent, rec) => {
    const list = await agent.request(m.session.list, { cwd: ws });
    const e = list.sessions.find((x) => x.sessionId === sid);
    assert.ok(e, "the session is listed for its cwd");
    assert.equal(e.title, "explain the file");
    assert.equal(e.cwd, ws);
    assert.match(e.updatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const other = await agent.request(m.session.list, { cwd: "/nonexistent-dir" });
    assert.equal(other.sessions.length, 0);
    const loaded = await agent.request(m.session.load, { sessionId: sid, cwd: ws, mcpServers: [] });
    assert.equal(loaded.modes.currentModeId, "auto-edit", "the mode was saved with the session");
    const replay = rec.updates.filter((u) => u.sessionId === sid).map((u) => u.update.sessionUpdate);
    assert.ok(replay.includes("user_message_chunk") && replay.includes("tool_call") && replay.includes("tool_call_update"),
      `replayed: ${replay.join(", ")}`);
    const user = texts(rec, sid, "user_message_chunk");
    assert.match(user, /explain the file/);
    assert.match(user, /<resource uri="file:\/\/\/spec\/notes\.md">\nEMBEDDED-NOTE\n<\/resource>/, "embedded resource text with its uri");
    assert.match(user, /other\.md <file:\/\/\/spec\/other\.md>/, "resource link");
    assert.match(texts(rec, sid), /first answer/);
    const r = await agent.request(m.session.prompt, { sessionId: sid, prompt: [{ type: "text", text: "again" }] });
    assert.equal(r.stopReason, "end_turn");
  });

  // a third: resume (no replay), then close; the closed session is gone for prompts
  await withClient("third", model, async (agent, rec) => {
    const res = await agent.request(m.session.resume, { sessionId: sid, cwd: ws, mcpServers: [] });
    assert.ok(res.modes);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!kinds(rec, sid).includes("user_message_chunk"), "resume does not replay");
    assert.deepEqual(await agent.request(m.session.close, { sessionId: sid }), {});
    assert.equal(await rpcCode(agent.request(m.session.prompt, { sessionId: sid, prompt: [{ type: "text", text: "x" }] })), -32002);
    assert.equal(await rpcCode(agent.request(m.session.load, { sessionId: "0123456789abcdef", cwd: ws, mcpServers: [] })), -32002);
  });
  assertNoSdkComplaints();
});

test("slash commands: /checkpoint, /test, /undo, /compact", async () => {
  const ws = d.workspace("ws-slash", {
    "v.txt": "one\n",
    "test.sh": "echo 1..1\nif grep -q two v.txt; then echo 'ok 1 - v says two'; else echo 'not ok 1 - v says two'; exit 1; fi\n",
  });
  const model = d.script("slash", [
    call("read_file", { path: "v.txt" }),
    "Changing it.\n" + call("write_file", { path: "v.txt", content: "two\n" }),
    "Changed v.txt to two.",
    "Summary: the user asked to change v.txt; it now says two.",
  ]);
  const m = acp.methods.agent;
  await withClient("slash", model, async (agent, rec) => {
    const s = await agent.request(m.session.new, { cwd: ws, mcpServers: [],
      _meta: { qcoder: { mode: "auto-edit", testCommand: "sh test.sh", maxSteps: 10 } } });
    assert.equal(s.modes.currentModeId, "auto-edit");
    await new Promise((r) => setTimeout(r, 100));
    const cmds = rec.updates.find((u) => u.update.sessionUpdate === "available_commands_update");
    assert.deepEqual(cmds.update.availableCommands.map((c) => c.name), ["compact", "checkpoint", "undo", "test"]);
    const say = async (text) => {
      const before = rec.updates.length;
      const r = await agent.request(m.session.prompt, { sessionId: s.sessionId, prompt: [{ type: "text", text }] });
      return { stop: r.stopReason, updates: rec.updates.slice(before).map((u) => u.update) };
    };
    const chunk = (ups) => ups.filter((u) => u.sessionUpdate === "agent_message_chunk").map((u) => u.content.text).join("");

    let r = await say("/checkpoint before my change");
    assert.equal(r.stop, "end_turn");
    assert.match(chunk(r.updates), /Checkpoint \S+ created/);

    r = await say("make v say two");
    assert.equal(r.stop, "end_turn");
    assert.equal(readFileSync(join(ws, "v.txt"), "utf8"), "two\n");

    r = await say("/test");
    const call1 = r.updates.find((u) => u.sessionUpdate === "tool_call");
    assert.equal(call1.kind, "execute");
    const done1 = r.updates.filter((u) => u.sessionUpdate === "tool_call_update").pop();
    assert.equal(done1.status, "completed");
    assert.match(done1.content[0].content.text, /1 passed, 0 failed/);

    r = await say("/undo");
    assert.match(chunk(r.updates), /Restored the files to checkpoint/);
    assert.equal(readFileSync(join(ws, "v.txt"), "utf8"), "one\n", "/undo went back to before the prompt's change");

    r = await say("/test");
    const done2 = r.updates.filter((u) => u.sessionUpdate === "tool_call_update").pop();
    assert.equal(done2.status, "failed");
    assert.match(done2.content[0].content.text, /0 passed, 1 failed/);

    r = await say("/compact");
    assert.equal(r.stop, "end_turn");
    assert.match(chunk(r.updates), /Compacted the conversation: \d+ -> \d+ tokens/);

    writeFileSync(join(ws, "v.txt"), "three\n");
    r = await say("/undo"); // back to the /checkpoint taken first
    assert.equal(readFileSync(join(ws, "v.txt"), "utf8"), "one\n");
    r = await say("/undo");
    assert.match(chunk(r.updates), /Nothing to undo/);
  });
  assertNoSdkComplaints();
});

test("the daemon dies: the pending prompt gets an error, the next request starts a new daemon", async () => {
  const ws = d.workspace("ws-die", { "d.txt": "d\n" });
  const model = d.script("die", [{ text: "a slow reply that the daemon will not finish", delay_ms: 150 }, "after the restart"]);
  const m = acp.methods.agent;
  await withClient("die", model, async (agent, rec) => {
    const s = await agent.request(m.session.new, { cwd: ws, mcpServers: [] });
    const p = agent.request(m.session.prompt, { sessionId: s.sessionId, prompt: [{ type: "text", text: "go" }] });
    for (let i = 0; i < 100 && !texts(rec, s.sessionId); i++) await new Promise((r) => setTimeout(r, 50));
    const { pid } = await d.call("_qcoder/status");
    process.kill(pid, "SIGKILL");
    await assert.rejects(p, (e) => e.code === -32603 && /daemon went away/.test(e.message));
    // the next request starts a new daemon (the relay replays initialize first)
    const s2 = await agent.request(m.session.new, { cwd: ws, mcpServers: [] });
    const { pid: pid2 } = await d.call("_qcoder/status");
    assert.notEqual(pid2, pid);
    const r = await agent.request(m.session.prompt, { sessionId: s2.sessionId, prompt: [{ type: "text", text: "hi" }] });
    assert.equal(r.stopReason, "end_turn");
    // the first session was saved: it comes back with session/load
    await agent.request(m.session.load, { sessionId: s.sessionId, cwd: ws, mcpServers: [] });
    assert.match(texts(rec, s.sessionId, "user_message_chunk"), /go/);
  });
});
