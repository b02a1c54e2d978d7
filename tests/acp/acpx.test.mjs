// acpx.test.mjs — the same kind of turn driven by acpx (npm), a second ACP client written
// independently of ours: `acpx --agent "qcoder acp …" --approve-all --format json exec`.
// Its JSON transcript (both directions of the wire) must show the permission request,
// fs read/write, a terminal, a diff, end_turn — and every daemon message must match the
// ACP schema.
import { test, after } from "node:test";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { assert, Daemon, Tap, HERE, QCODER, call } from "./harness.mjs";

const d = new Daemon("acpx");
after(() => d.stop());

// Methods the agent sends (everything else with a method is the client's).
const AGENT_METHODS = new Set(["session/update", "session/request_permission", "fs/read_text_file",
  "fs/write_text_file", "terminal/create", "terminal/output", "terminal/wait_for_exit", "terminal/kill",
  "terminal/release"]);

test("acpx runs a turn against qcoder acp: permission, fs, terminal, diff, end_turn", () => {
  const ws = d.workspace("ws-acpx", { "a.txt": "hello world\n" });
  const model = d.script("acpx", [
    call("read_file", { path: "a.txt" }),
    "Editing.\n" + call("edit_file", { path: "a.txt", old_string: "hello", new_string: "bye" }),
    call("run_command", { command: "echo from-the-acpx-terminal" }),
    "Done: a.txt says bye world.",
  ]);
  const agentCmd = [QCODER, ...d.acpArgs(model)].join(" ");
  const r = spawnSync(join(HERE, "node_modules", ".bin", "acpx"),
    ["--agent", agentCmd, "--cwd", ws, "--approve-all", "--format", "json", "--timeout", "60", "exec", "change hello to bye"],
    { env: d.env, encoding: "utf8", timeout: 90000 });
  assert.equal(r.status, 0, `acpx failed: ${r.stderr}\n${r.stdout.slice(-2000)}`);
  const msgs = r.stdout.split("\n").filter((l) => l.trim().startsWith("{")).map((l) => JSON.parse(l));

  // replay the transcript through the schema tap, telling the two directions apart
  const tap = new Tap("acpx");
  const agentPending = new Set();
  for (const m of msgs) {
    if (m.method) {
      if (AGENT_METHODS.has(m.method)) {
        if (m.id !== undefined) agentPending.add(JSON.stringify(m.id));
        tap.incoming(m);
      } else {
        tap.outgoing(m);
      }
    } else if (agentPending.has(JSON.stringify(m.id))) {
      agentPending.delete(JSON.stringify(m.id)); // the client's answer to a daemon request
    } else {
      tap.incoming(m); // the daemon's answer to a client request
    }
  }
  tap.assertValid();

  const methods = msgs.map((m) => m.method).filter(Boolean);
  for (const want of ["initialize", "session/new", "session/prompt", "session/request_permission", "fs/read_text_file",
    "fs/write_text_file", "terminal/create", "terminal/wait_for_exit", "terminal/output", "terminal/release"])
    assert.ok(methods.includes(want), `no ${want} in the transcript`);
  const ups = msgs.filter((m) => m.method === "session/update").map((m) => m.params.update);
  assert.ok(ups.some((u) => (u.content || []).some?.((c) => c.type === "diff" && c.newText === "bye world\n")), "a diff");
  assert.ok(ups.some((u) => (u.content || []).some?.((c) => c.type === "terminal")), "terminal content");
  const promptId = msgs.find((m) => m.method === "session/prompt").id;
  const answer = msgs.findLast((m) => !m.method && m.id === promptId && m.result?.stopReason);
  assert.equal(answer.result.stopReason, "end_turn");
  assert.equal(readFileSync(join(ws, "a.txt"), "utf8"), "bye world\n", "acpx wrote the edit to disk");
  const said = ups.filter((u) => u.sessionUpdate === "agent_message_chunk").map((u) => u.content.text).join("");
  assert.match(said, /Done: a\.txt says bye world\./);
});
