// editor selection → command arguments (UTF-16 ranges, diagnostics) per docs/lsp-contract.md.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DiagnosticLike, DocumentLike, SelectionLike, askArgument, cleanPrompt, codeActionArgument, diagnosticsIn,
  explainArgument, fixArgument, lspSeverity, refactorArgument, runArgument, targetRange,
} from '../src/args';

const lines = ['int main(void) {', '  puts("héllo 😀 wörld");', '  return 0', '}'];
const doc: DocumentLike = { uri: 'file:///p/src/main.c', lineCount: lines.length, lineText: (n) => lines[n] };
const at = (line: number, character: number) => ({ line, character });
const cursor = (line: number, character: number): SelectionLike => ({ start: at(line, character), end: at(line, character), active: at(line, character) });
const sel = (a: [number, number], b: [number, number]): SelectionLike => ({ start: at(...a), end: at(...b), active: at(...b) });

test('an empty selection means the whole cursor line, ending at its UTF-16 length', () => {
  assert.deepEqual(targetRange(doc, cursor(1, 3)), { start: at(1, 0), end: at(1, 25) });
  assert.equal(lines[1].length, 25); // JS strings count UTF-16 units: 😀 is 2
  assert.deepEqual(targetRange(doc, cursor(9, 0)), { start: at(3, 0), end: at(3, 1) }, 'clamped to the last line');
});

test('a selection passes through; one ending at column 0 of a later line ends at the line before', () => {
  assert.deepEqual(targetRange(doc, sel([1, 8], [1, 16])), { start: at(1, 8), end: at(1, 16) });
  assert.deepEqual(targetRange(doc, sel([0, 0], [2, 0])), { start: at(0, 0), end: at(1, 25) });
  assert.deepEqual(targetRange(doc, sel([2, 0], [2, 0])), { start: at(2, 0), end: at(2, 10) });
});

const diags: DiagnosticLike[] = [
  { range: { start: at(1, 2), end: at(1, 6) }, message: 'implicit puts', severity: 1, source: 'cc' },
  { range: { start: at(2, 10), end: at(2, 10) }, message: "expected ';'", severity: 0, source: 'cc', code: { value: 'E12' } },
  { range: { start: at(0, 0), end: at(3, 1) }, message: 'spans all', severity: 3, code: 7 },
];

test('fix sends the diagnostics on the range lines in LSP shape', () => {
  assert.deepEqual(fixArgument(doc, cursor(2, 4), diags), {
    uri: 'file:///p/src/main.c',
    range: { start: at(2, 0), end: at(2, 10) },
    diagnostics: [
      { range: { start: at(2, 10), end: at(2, 10) }, message: "expected ';'", severity: 1, source: 'cc', code: 'E12' },
      { range: { start: at(0, 0), end: at(3, 1) }, message: 'spans all', severity: 4, code: 7 },
    ],
  });
  assert.deepEqual(diagnosticsIn(diags, { start: at(3, 0), end: at(3, 1) }).map((d) => d.message), ['spans all']);
  assert.deepEqual([0, 1, 2, 3, 9, -1, 1.5].map(lspSeverity), [1, 2, 3, 4, 1, 1, 1]);
});

test('explain, refactor, ask and run arguments', () => {
  assert.deepEqual(explainArgument(doc, sel([1, 8], [1, 16])), { uri: doc.uri, range: { start: at(1, 8), end: at(1, 16) } });
  assert.deepEqual(refactorArgument(doc, sel([0, 0], [1, 25]), 'rename main'),
    { uri: doc.uri, range: { start: at(0, 0), end: at(1, 25) }, instruction: 'rename main' });
  assert.deepEqual(askArgument('why?', doc, cursor(1, 1)), { prompt: 'why?', uri: doc.uri }, 'no range for an empty selection');
  assert.deepEqual(askArgument('why?', doc, sel([1, 0], [1, 4])), { prompt: 'why?', uri: doc.uri, range: { start: at(1, 0), end: at(1, 4) } });
  assert.deepEqual(askArgument('why?'), { prompt: 'why?' });
  assert.deepEqual(runArgument('make it faster'), { prompt: 'make it faster' });
});

test('code action arguments are recognised and validated', () => {
  const a = { uri: doc.uri, range: { start: at(2, 0), end: at(2, 10) }, diagnostics: [] };
  assert.equal(codeActionArgument(a), a);
  for (const bad of [undefined, null, 'x', {}, { uri: doc.uri }, { uri: 1, range: a.range },
    { uri: doc.uri, range: { start: at(-1, 0), end: at(0, 0) } }, { uri: doc.uri, range: { start: at(0, 0.5), end: at(0, 1) } },
    { scheme: 'file', path: '/p' }]) {
    assert.equal(codeActionArgument(bad), undefined, JSON.stringify(bad));
  }
  assert.equal(cleanPrompt('  hi  '), 'hi');
  assert.equal(cleanPrompt('   '), undefined);
  assert.equal(cleanPrompt(undefined), undefined);
});
