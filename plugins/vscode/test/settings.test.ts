// settings → `qcoder lsp` command line and initializationOptions (docs/lsp-contract.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serverLaunch } from '../src/settings';

test('defaults: qcoder lsp with no flags and empty initializationOptions', () => {
  assert.deepEqual(serverLaunch({}), { ok: true, launch: { command: 'qcoder', args: ['lsp'], initializationOptions: {} } });
  assert.deepEqual(serverLaunch({ path: '  ', model: '', remoteUrl: '', mode: '' }),
    { ok: true, launch: { command: 'qcoder', args: ['lsp'], initializationOptions: {} } });
});

test('model and mode become flags and initializationOptions', () => {
  assert.deepEqual(serverLaunch({ path: '/opt/qcoder/bin/qcoder', model: 'script:/tmp/s.json', mode: 'auto-edit' }), {
    ok: true,
    launch: {
      command: '/opt/qcoder/bin/qcoder',
      args: ['lsp', '--model', 'script:/tmp/s.json', '--mode', 'auto-edit'],
      initializationOptions: { model: 'script:/tmp/s.json', mode: 'auto-edit' },
    },
  });
});

test('remoteUrl becomes --remote and remote', () => {
  const r = serverLaunch({ remoteUrl: ' https://gpu:8000/v1 ', mode: 'read-only' });
  assert.deepEqual(r, {
    ok: true,
    launch: { command: 'qcoder', args: ['lsp', '--remote', 'https://gpu:8000/v1', '--mode', 'read-only'],
      initializationOptions: { remote: 'https://gpu:8000/v1', mode: 'read-only' } },
  });
});

test('~ in path and model is the home folder', () => {
  const r = serverLaunch({ path: '~/bin/qcoder', model: '~/m/q.gguf' }, '/home/ann/');
  assert.ok(r.ok);
  assert.equal(r.launch.command, '/home/ann/bin/qcoder');
  assert.deepEqual(r.launch.args, ['lsp', '--model', '/home/ann/m/q.gguf']);
  const unknownHome = serverLaunch({ path: '~/bin/qcoder' });
  assert.ok(unknownHome.ok);
  assert.equal(unknownHome.launch.command, '~/bin/qcoder');
});

test('bad settings are refused with messages naming the setting', () => {
  const both = serverLaunch({ model: 'm.gguf', remoteUrl: 'http://h' });
  assert.deepEqual(both, { ok: false, errors: ['Set either qcoder.model or qcoder.remoteUrl, not both.'] });
  const url = serverLaunch({ remoteUrl: 'ftp://h' });
  assert.ok(!url.ok && /qcoder\.remoteUrl must be an http/.test(url.errors[0]));
  const spaced = serverLaunch({ remoteUrl: 'http://a b' });
  assert.ok(!spaced.ok);
  const mode = serverLaunch({ mode: 'yolo' });
  assert.ok(!mode.ok && /qcoder\.mode must be one of ask, auto-edit, full-auto, read-only/.test(mode.errors[0]));
  const types = serverLaunch({ path: 3, model: ['x'] });
  assert.ok(!types.ok);
  assert.deepEqual(types.errors, ['qcoder.path must be a string.', 'qcoder.model must be a string.']);
});
