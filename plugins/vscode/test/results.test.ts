// result presentation and the once-only Announcer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Announcer, messageLevel, presentResult } from '../src/results';

test('text results: short as a message, long or multi-line as a document', () => {
  assert.deepEqual(presentResult('qcoder.ask', undefined, { text: 'It returns 0.' }), { level: 'info', message: 'It returns 0.' });
  const long = 'line one\nline two';
  assert.deepEqual(presentResult('qcoder.explain', undefined, { text: long }), { level: 'info', message: long, document: long });
  assert.equal(presentResult('qcoder.explain', undefined, { text: 'x'.repeat(201) }).document?.length, 201);
});

test('agent results: summary, stop reason and changed files', () => {
  assert.deepEqual(presentResult('qcoder.fix', undefined,
    { summary: 'Added the missing semicolon.', stopReason: 'end_turn', changedFiles: ['file:///p/src/main.c', '/p/README.md', { uri: 'file:///q/x.c' }, 3] }, '/p'),
  { level: 'info', message: 'Added the missing semicolon.', extra: 'changed: src/main.c, README.md, /q/x.c' });
  assert.deepEqual(presentResult('qcoder.run', undefined, { summary: 'Partly done.', stopReason: 'max_turn_requests', changedFiles: [] }),
    { level: 'warning', message: 'Partly done.', extra: 'run stopped: max_turn_requests' });
  assert.equal(presentResult('qcoder.run', undefined, { summary: 'Boom.', stopReason: 'error' }).level, 'error');
  assert.deepEqual(presentResult('qcoder.refactor', undefined, { stopReason: 'end_turn' }), { level: 'info', message: 'qcoder: refactor done.' });
  assert.deepEqual(presentResult('qcoder.run', undefined, null), { level: 'info', message: 'qcoder: run done.' });
});

test('errors and cancellation', () => {
  assert.deepEqual(presentResult('qcoder.fix', { code: -32800, message: 'cancelled' }, undefined), { level: 'warning', message: 'qcoder: fix cancelled.' });
  assert.deepEqual(presentResult('qcoder.fix', { code: -32603, message: 'model not loaded' }, undefined), { level: 'error', message: 'qcoder: fix failed: model not loaded' });
  assert.deepEqual([1, 2, 3, 4, 5].map(messageLevel), ['error', 'warning', 'info', 'info', 'info']);
});

test('the Announcer hides one repeat of a text within 10 s, in either order, never the extras', () => {
  let now = 1000;
  const a = new Announcer(() => now);
  assert.equal(a.filter('Added the missing semicolon.'), 'Added the missing semicolon.');
  assert.equal(a.filter('Added the missing semicolon.', 'changed: src/main.c'), 'changed: src/main.c');
  assert.equal(a.filter('Added the missing semicolon.'), 'Added the missing semicolon.', 'a second request: shown again');
  assert.equal(a.filter('qcoder: Added the missing semicolon. (1 file)'), undefined, 'contains a shown text');
  assert.equal(a.filter('  '), undefined);
  assert.equal(a.filter('Explained.'), 'Explained.');
  now += 10_001;
  assert.equal(a.filter('Explained.'), 'Explained.', 'shown again after the window');
  assert.equal(a.filter('Something else', 'x'), 'Something else — x');
});
