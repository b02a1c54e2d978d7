// Activation smoke test with a FAKE `vscode` module (test/fake-vscode.ts): the compiled
// extension loads with its real dependencies, registers exactly the commands package.json
// contributes, and reports bad settings in the status bar without starting anything.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';
import { test } from 'node:test';

type Resolver = (request: string, ...rest: unknown[]) => string;
const M = Module as unknown as { _resolveFilename: Resolver };
const original = M._resolveFilename;
M._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
  return request === 'vscode' ? require.resolve('./fake-vscode') : original.call(this, request, ...rest);
};

// eslint-disable-next-line @typescript-eslint/no-require-imports
const fake = require('./fake-vscode') as typeof import('./fake-vscode');

test('activate registers the contributed commands and reports bad settings', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ext = require('../src/extension') as typeof import('../src/extension');
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    contributes: { commands: { command: string }[]; configuration: { properties: Record<string, { default?: unknown }> } };
    main: string;
  };
  assert.equal(path.resolve(__dirname, '..', '..', manifest.main), require.resolve('../src/extension'));
  for (const [key, spec] of Object.entries(manifest.contributes.configuration.properties)) {
    fake.config[key.replace(/^qcoder\./, '')] = spec.default;
  }
  fake.config.mode = 'yolo';
  const subscriptions: { dispose(): unknown }[] = [];
  ext.activate({ subscriptions } as never);
  assert.deepEqual([...fake.registered.keys()].sort(), manifest.contributes.commands.map((c) => c.command).sort());
  const item = fake.statusItems[0];
  assert.equal(item.shown, true);
  assert.equal(item.command, 'qcoder.showOutput');
  assert.equal(item.text, '$(error) qcoder');
  assert.match(String(item.tooltip), /qcoder\.mode must be one of/);
  assert.match(fake.messages[0]?.text ?? '', /qcoder\.mode must be one of/);
});
