// the status-bar state machine: starting, ready, busy (progress title), error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StatusModel, progressEvent, renderStatus } from '../src/status';

test('life cycle: stopped → starting → ready → busy → ready → stopped', () => {
  const m = new StatusModel();
  assert.deepEqual(m.view(), { kind: 'stopped' });
  assert.deepEqual(m.apply({ type: 'starting' }), { kind: 'starting' });
  assert.deepEqual(m.apply({ type: 'ready' }), { kind: 'ready' });
  assert.deepEqual(m.apply({ type: 'begin', id: 'c1', title: 'qcoder: fix' }),
    { kind: 'busy', title: 'qcoder: fix', message: undefined, percentage: undefined, count: 1 });
  assert.deepEqual(m.apply(progressEvent('tok', { kind: 'begin', title: 'Fixing main.c', percentage: 0 })),
    { kind: 'busy', title: 'Fixing main.c', message: undefined, percentage: 0, count: 2 });
  assert.deepEqual(m.apply(progressEvent('tok', { kind: 'report', message: 'running tests', percentage: 140 })),
    { kind: 'busy', title: 'Fixing main.c', message: 'running tests', percentage: 100, count: 2 });
  assert.deepEqual(m.apply(progressEvent('tok', { kind: 'end' })),
    { kind: 'busy', title: 'qcoder: fix', message: undefined, percentage: undefined, count: 1 });
  assert.deepEqual(m.apply({ type: 'end', id: 'c1' }), { kind: 'ready' });
  m.apply({ type: 'begin', id: 'c2', title: 'qcoder: run' });
  assert.deepEqual(m.apply({ type: 'stopped' }), { kind: 'stopped' });
  assert.deepEqual(m.apply({ type: 'ready' }), { kind: 'stopped' }, 'ready without starting is ignored');
});

test('an error stays until the server starts again and drops running work', () => {
  const m = new StatusModel();
  m.apply({ type: 'starting' });
  m.apply({ type: 'ready' });
  m.apply({ type: 'begin', id: 'c1', title: 'qcoder: ask' });
  assert.deepEqual(m.apply({ type: 'error', message: 'server crashed' }), { kind: 'error', message: 'server crashed' });
  assert.deepEqual(m.apply({ type: 'stopped' }), { kind: 'error', message: 'server crashed' });
  assert.deepEqual(m.apply({ type: 'begin', id: 'c2', title: 'x' }), { kind: 'error', message: 'server crashed' });
  m.apply({ type: 'starting' });
  assert.deepEqual(m.apply({ type: 'ready' }), { kind: 'ready' }, 'nothing left over from before the error');
});

test('events that do not fit are ignored', () => {
  const m = new StatusModel();
  assert.deepEqual(m.apply({ type: 'begin', id: 'x', title: 't' }), { kind: 'stopped' }, 'begin while stopped');
  m.apply({ type: 'starting' });
  m.apply({ type: 'ready' });
  assert.deepEqual(m.apply({ type: 'report', id: 'nope', message: 'm' }), { kind: 'ready' });
  assert.deepEqual(m.apply({ type: 'end', id: 'nope' }), { kind: 'ready' });
  assert.deepEqual(m.apply({ type: 'begin', id: 'a', title: 't', percentage: Number.NaN }),
    { kind: 'busy', title: 't', message: undefined, percentage: undefined, count: 1 });
});

test('a server that never ends its progress cannot grow the model without bound', () => {
  const m = new StatusModel();
  m.apply({ type: 'starting' });
  m.apply({ type: 'ready' });
  let v = m.view();
  for (let i = 0; i < 1000; i++) {
    v = m.apply({ type: 'begin', id: `p${i}`, title: `t${i}` });
  }
  assert.equal(v.kind, 'busy');
  assert.ok(v.kind === 'busy' && v.count === 64 && v.title === 't999');
});

test('rendering', () => {
  assert.equal(renderStatus({ kind: 'starting' }).text, '$(sync~spin) qcoder');
  assert.equal(renderStatus({ kind: 'ready' }).text, '$(sparkle) qcoder');
  const err = renderStatus({ kind: 'error', message: 'could not start "qcoder lsp"' });
  assert.equal(err.isError, true);
  assert.match(err.tooltip, /could not start "qcoder lsp".*Click to show the qcoder output/);
  const busy = renderStatus({ kind: 'busy', title: 'qcoder: fix', message: 'thinking', percentage: 50, count: 2 });
  assert.equal(busy.text, '$(loading~spin) qcoder: fix — thinking (50%)');
  assert.match(busy.tooltip, /\(\+1 more\)/);
  const long = renderStatus({ kind: 'busy', title: 'x'.repeat(100), count: 1 });
  assert.equal(long.text.length, '$(loading~spin) '.length + 48);
  assert.ok(long.text.endsWith('…'));
  assert.equal(renderStatus({ kind: 'stopped' }).isError, false);
});
