// concurrent.test.mjs — many clients, many sessions, one daemon and one model: 5 `qcoder
// acp` clients with 4 sessions each prompt at the same time; all 20 turns finish with
// their own answers, each client sees only its own sessions' updates, the model calls
// went through the backend's fair queue, and when the clients go the daemon frees every
// session. Also: a client that stops reading does not hold up the others.
import { test, after } from "node:test";
import { acp, assert, Daemon, Tap, spawnAgent, makeClient, newRecord, initialize, texts, call,
  assertNoSdkComplaints } from "./harness.mjs";

const d = new Daemon("conc");
after(() => d.stop());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("20 concurrent sessions from 5 clients all finish correctly; disconnects free them", async () => {
  const ws = d.workspace("ws-conc", { "data.txt": "forty-two\n" });
  const model = d.script("conc", [
    call("read_file", { path: "data.txt" }),
    { text: "The file says forty-two.", delay_ms: 5 },
  ]);
  const clients = [];
  for (let c = 0; c < 5; c++) {
    const rec = newRecord();
    const tap = new Tap(`client${c}`);
    const { child, stream } = spawnAgent(d, model, tap);
    const conn = makeClient(rec).connect(stream);
    clients.push({ rec, tap, child, conn, agent: conn.agent });
  }
  const t0 = Date.now();
  const results = await Promise.all(clients.map(async (cl, c) => {
    await initialize(cl.agent);
    const sids = await Promise.all([0, 1, 2, 3].map(() =>
      cl.agent.request(acp.methods.agent.session.new, { cwd: ws, mcpServers: [] }).then((s) => s.sessionId)));
    const stops = await Promise.all(sids.map((sid, i) => cl.agent.request(acp.methods.agent.session.prompt,
      { sessionId: sid, prompt: [{ type: "text", text: `client ${c} session ${i}: what does the file say?` }] })));
    return { sids, stops };
  }));
  const ms = Date.now() - t0;
  const all = new Set();
  results.forEach((r, c) => {
    const rec = clients[c].rec;
    r.stops.forEach((s) => assert.equal(s.stopReason, "end_turn"));
    for (const sid of r.sids) {
      all.add(sid);
      assert.equal(texts(rec, sid), "The file says forty-two.", `session ${sid} of client ${c}`);
    }
    const seen = new Set(rec.updates.map((u) => u.sessionId));
    assert.deepEqual([...seen].sort(), [...r.sids].sort(), `client ${c} sees only its own sessions`);
  });
  assert.equal(all.size, 20);
  const snap = await d.call("_qcoder/sessions");
  assert.equal(snap.sessions.length, 20);
  const be = snap.backends.find((b) => b.spec === model);
  assert.equal(be.fairQueue, true);
  assert.equal(be.modelCalls, 40, "every model call took a turn in the queue");
  assert.equal(be.sessions, 20, "one shared backend");
  console.log(`# 20 sessions, 40 model calls in ${ms} ms`);

  for (const cl of clients) {
    cl.tap.assertValid();
    cl.child.kill();
  }
  // the daemon notices the disconnects and frees the sessions and their workers
  let s2;
  for (let i = 0; i < 100; i++) {
    s2 = await d.call("_qcoder/sessions");
    if (!s2.sessions.length && !s2.allocated && !s2.workers) break;
    await sleep(100);
  }
  // the backend stays open: it is the daemon's default model (the first client started the
  // daemon with its --model), which is kept loaded
  const users = s2.backends.reduce((n, b) => n + b.sessions, 0);
  assert.deepEqual([s2.sessions.length, s2.allocated, s2.workers, users], [0, 0, 0, 0],
    `after the clients left: ${JSON.stringify(s2)}`);
  assertNoSdkComplaints();
});

test("a client that disconnects mid-turn has its prompt cancelled; a stuck client does not block others", async () => {
  const ws = d.workspace("ws-stuck", { "x.txt": "x\n" });
  const slow = d.script("slow", [{ text: "slow slow slow slow slow slow slow slow slow slow slow slow", delay_ms: 200 }]);
  const quick = d.script("quick", ["quick answer"]);
  // client A starts a slow turn, and never answers a permission: it just hangs around
  const recA = newRecord();
  const tapA = new Tap("stuck");
  const a = spawnAgent(d, slow, tapA);
  const connA = makeClient(recA, { permission: () => new Promise(() => {}) }).connect(a.stream);
  await initialize(connA.agent);
  const sa = await connA.agent.request(acp.methods.agent.session.new, { cwd: ws, mcpServers: [] });
  const pa = connA.agent.request(acp.methods.agent.session.prompt, { sessionId: sa.sessionId, prompt: [{ type: "text", text: "go" }] });
  pa.catch(() => {});
  // client B is served meanwhile
  const recB = newRecord();
  const tapB = new Tap("quick");
  const b = spawnAgent(d, quick, tapB);
  const r = await makeClient(recB).connectWith(b.stream, async (agent) => {
    await initialize(agent);
    const s = await agent.request(acp.methods.agent.session.new, { cwd: ws, mcpServers: [] });
    const t0 = Date.now();
    const res = await agent.request(acp.methods.agent.session.prompt, { sessionId: s.sessionId, prompt: [{ type: "text", text: "hi" }] });
    return { res, ms: Date.now() - t0 };
  });
  b.child.kill();
  assert.equal(r.res.stopReason, "end_turn");
  assert.ok(r.ms < 5000, `client B waited ${r.ms} ms`);
  // A goes away mid-turn: its session is cancelled and freed
  let snap = await d.call("_qcoder/sessions");
  assert.ok(snap.sessions.some((s) => s.sessionId === sa.sessionId && s.busy), "A's turn is still running");
  a.child.kill("SIGKILL");
  for (let i = 0; i < 100; i++) {
    snap = await d.call("_qcoder/sessions");
    if (!snap.sessions.length && !snap.allocated && !snap.workers) break;
    await sleep(100);
  }
  assert.deepEqual([snap.sessions.length, snap.allocated, snap.workers], [0, 0, 0], JSON.stringify(snap));
  tapB.assertValid();
});
