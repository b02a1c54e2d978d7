// inline completion result normalisation (InlineCompletionItem[] | {items} | null).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { insertTextOf, normalizeInlineItems } from '../src/inline';

test('arrays, lists and null', () => {
  const a = { insertText: 'return 0;' };
  assert.deepEqual(normalizeInlineItems([a]), [a]);
  assert.deepEqual(normalizeInlineItems({ items: [a] }), [a]);
  assert.deepEqual(normalizeInlineItems(null), []);
  assert.deepEqual(normalizeInlineItems(undefined), []);
  assert.deepEqual(normalizeInlineItems({ items: 'nope' } as never), []);
});

test('empty, whitespace-only, malformed and duplicate items are dropped; order is kept', () => {
  const items = [
    { insertText: '' }, { insertText: '  \n' }, { insertText: 'x + 1' }, null, { insertText: { value: 'foo($1)' } },
    { insertText: 'x + 1' }, { insertText: { value: 7 } }, { insertText: 42 },
  ];
  assert.deepEqual(normalizeInlineItems(items as never), [{ insertText: 'x + 1' }, { insertText: { value: 'foo($1)' } }]);
  assert.equal(insertTextOf({ insertText: { value: 'v' } }), 'v');
});

test('at most 8 items', () => {
  const many = Array.from({ length: 20 }, (_, i) => ({ insertText: `item ${i}` }));
  const out = normalizeInlineItems(many);
  assert.equal(out.length, 8);
  assert.equal(out[7].insertText, 'item 7');
});
