// mcp.test.mjs — an MCP reference server (@modelcontextprotocol/server-everything, stdio)
// offered in session/new: the daemon starts it, lists its tools, offers them to the model
// as mcp__everything__*, calls get-sum when the (scripted) model asks, and the result
// reaches both the client and the conversation the model sees (checked by reloading the
// session). A server that cannot start is reported, not fatal.
import { test, after } from "node:test";
import { join } from "node:path";
import { acp, assert, Daemon, Tap, HERE, spawnAgent, makeClient, newRecord, initialize, texts, call,
  assertNoSdkComplaints } from "./harness.mjs";

const d = new Daemon("mcp");
after(() => d.stop());
const everything = join(HERE, "node_modules", ".bin", "mcp-server-everything");

test("an MCP server's tool is offered, called, and its result reaches the client and the model", async () => {
  const ws = d.workspace("ws-mcp", { "README": "x\n" });
  const model = d.script("mcp", [
    "Let me add them with the MCP tool.\n" + call("mcp__everything__get-sum", { a: 2, b: 3 }),
    "The sum is 5.",
  ]);
  const rec = newRecord();
  const tap = new Tap("mcp");
  const app = makeClient(rec);
  const { child, stream } = spawnAgent(d, model, tap);
  const r = await app.connectWith(stream, async (agent) => {
    await initialize(agent);
    const s = await agent.request(acp.methods.agent.session.new, { cwd: ws, mcpServers: [
      { name: "everything", command: everything, args: ["stdio"], env: [{ name: "QCODER_TEST_ENV", value: "1" }] },
      { name: "broken", command: "/nonexistent/mcp-server", args: [], env: [] },
    ] });
    const report = s._meta.qcoder.mcpServers;
    const ev = report.find((x) => x.name === "everything");
    assert.ok(ev.tools.includes("mcp__everything__get-sum"), `offered: ${JSON.stringify(ev)}`);
    assert.ok(ev.tools.includes("mcp__everything__echo"));
    assert.match(report.find((x) => x.name === "broken").error, /cannot start MCP server 'broken'/);
    const res = await agent.request(acp.methods.agent.session.prompt,
      { sessionId: s.sessionId, prompt: [{ type: "text", text: "what is 2 + 3?" }] });
    return { res, sid: s.sessionId };
  });
  child.kill();
  assert.equal(r.res.stopReason, "end_turn");
  assert.match(texts(r.sid ? rec : rec, r.sid), /MCP server 'broken' is not available/, "the failure is shown to the user");
  const tc = rec.updates.find((u) => u.update.sessionUpdate === "tool_call" && u.update.toolCallId).update;
  assert.equal(tc.title, "mcp__everything__get-sum");
  assert.deepEqual(tc.rawInput, { a: 2, b: 3 });
  // get-sum is annotated readOnlyHint: a read, run without asking (other MCP tools ask in ask mode)
  assert.equal(tc.kind, "read");
  assert.ok(!rec.permissions.some((p) => p.toolCall.toolCallId === tc.toolCallId));
  const done = rec.updates.filter((u) => u.update.sessionUpdate === "tool_call_update" && u.update.toolCallId === tc.toolCallId).pop().update;
  assert.equal(done.status, "completed");
  assert.match(done.content[0].content.text, /The sum of 2 and 3 is 5/);
  assert.match(texts(rec, r.sid), /The sum is 5\./);
  tap.assertValid();

  // the tool result is part of the conversation the model sees: reload and look
  const rec2 = newRecord();
  const tap2 = new Tap("mcp-reload");
  const { child: c2, stream: s2 } = spawnAgent(d, model, tap2);
  await makeClient(rec2).connectWith(s2, async (agent) => {
    await initialize(agent);
    await agent.request(acp.methods.agent.session.load, { sessionId: r.sid, cwd: ws, mcpServers: [] });
  });
  c2.kill();
  const replayed = rec2.updates.filter((u) => u.update.sessionUpdate === "tool_call_update").map((u) => JSON.stringify(u.update.content));
  assert.ok(replayed.some((t) => /The sum of 2 and 3 is 5/.test(t)), `replay: ${replayed}`);
  tap2.assertValid();
  assertNoSdkComplaints();
});
