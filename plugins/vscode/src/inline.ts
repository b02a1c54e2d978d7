// inline.ts — normalising inline-completion results, pure so it is unit-tested in node.
//
// `textDocument/inlineCompletion` answers `InlineCompletionItem[] | InlineCompletionList |
// null` (LSP 3.18). vscode-languageclient converts that to VS Code's types with the same
// structure (an array or {items}; insertText a string or a SnippetString {value}); the
// extension's middleware passes the converted result through `normalizeInlineItems`, which
// drops items that would insert nothing (empty or whitespace-only text) and exact
// duplicates, and caps the number of items, so the editor never shows an empty ghost text.

export interface InlineItemLike {
  insertText: string | { value: string };
}

export type InlineResultLike<T extends InlineItemLike> = T[] | { items: T[] } | null | undefined;

const MAX_ITEMS = 8; // VS Code shows one at a time; more is only cycling noise

export function insertTextOf(item: InlineItemLike): string {
  const t = item.insertText;
  if (typeof t === 'string') {
    return t;
  }
  return typeof t === 'object' && t !== null && typeof t.value === 'string' ? t.value : '';
}

/** The useful items of a result, in the server's order. */
export function normalizeInlineItems<T extends InlineItemLike>(result: InlineResultLike<T>): T[] {
  if (result === null || result === undefined) {
    return [];
  }
  const items: unknown = Array.isArray(result) ? result : result.items;
  if (!Array.isArray(items)) {
    return [];
  }
  const seen = new Set<string>();
  const out: T[] = [];
  for (const item of items as T[]) {
    if (typeof item !== 'object' || item === null) {
      continue;
    }
    const text = insertTextOf(item);
    if (text.trim() === '' || seen.has(text)) {
      continue;
    }
    seen.add(text);
    out.push(item);
    if (out.length === MAX_ITEMS) {
      break;
    }
  }
  return out;
}
