// args.ts — the argument object of each qcoder command, built from an editor selection.
//
// Pure (no `vscode` import): callers pass plain line/character positions. VS Code's
// Position.character already counts UTF-16 code units, as LSP does, so columns pass through
// unchanged; the work here is choosing the range (an empty selection means the cursor line;
// a selection that ends at column 0 of a later line ends at the end of the line before, as
// a linewise selection does in Neovim), picking the diagnostics on those lines and
// converting them to LSP's shape, and checking arguments that arrive from a code action.
// Shapes follow docs/lsp-contract.md.

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

/** What is needed of a text document. */
export interface DocumentLike {
  uri: string;
  lineCount: number;
  lineText(line: number): string;
}

/** An editor selection: anchor/active order does not matter, start <= end. */
export interface SelectionLike {
  start: Position;
  end: Position;
  active: Position;
}

/** A VS Code diagnostic reduced to what LSP needs. VS Code severities: 0 Error .. 3 Hint. */
export interface DiagnosticLike {
  range: Range;
  message: string;
  severity: number;
  source?: string;
  code?: string | number | { value: string | number };
}

export interface LspDiagnostic {
  range: Range;
  message: string;
  severity: number; // LSP: 1 Error .. 4 Hint
  source?: string;
  code?: string | number;
}

export interface FixArgument {
  uri: string;
  range: Range;
  diagnostics?: LspDiagnostic[];
  instruction?: string;
}
export interface ExplainArgument {
  uri: string;
  range: Range;
}
export interface RefactorArgument {
  uri: string;
  range: Range;
  instruction: string;
}
export interface AskArgument {
  prompt: string;
  uri?: string;
  range?: Range;
}
export interface RunArgument {
  prompt: string;
}

const isEmpty = (s: SelectionLike): boolean =>
  s.start.line === s.end.line && s.start.character === s.end.character;

/** The range a command works on: the selection, or the whole cursor line when empty. */
export function targetRange(doc: DocumentLike, sel: SelectionLike): Range {
  if (isEmpty(sel)) {
    const line = Math.min(Math.max(sel.active.line, 0), Math.max(doc.lineCount - 1, 0));
    return { start: { line, character: 0 }, end: { line, character: doc.lineText(line).length } };
  }
  let end = sel.end;
  if (end.character === 0 && end.line > sel.start.line) {
    const prev = end.line - 1;
    end = { line: prev, character: doc.lineText(prev).length };
  }
  return { start: { ...sel.start }, end: { ...end } };
}

/** VS Code DiagnosticSeverity (0..3) → LSP DiagnosticSeverity (1..4). */
export function lspSeverity(vscodeSeverity: number): number {
  return Number.isInteger(vscodeSeverity) && vscodeSeverity >= 0 && vscodeSeverity <= 3 ? vscodeSeverity + 1 : 1;
}

export function toLspDiagnostic(d: DiagnosticLike): LspDiagnostic {
  const out: LspDiagnostic = {
    range: { start: { ...d.range.start }, end: { ...d.range.end } },
    message: d.message,
    severity: lspSeverity(d.severity),
  };
  if (d.source !== undefined) {
    out.source = d.source;
  }
  if (d.code !== undefined) {
    out.code = typeof d.code === 'object' ? d.code.value : d.code;
  }
  return out;
}

/** The diagnostics on any line of `range`, in LSP's shape. */
export function diagnosticsIn(diagnostics: readonly DiagnosticLike[], range: Range): LspDiagnostic[] {
  return diagnostics
    .filter((d) => d.range.start.line <= range.end.line && d.range.end.line >= range.start.line)
    .map(toLspDiagnostic);
}

export function fixArgument(doc: DocumentLike, sel: SelectionLike, diagnostics: readonly DiagnosticLike[]): FixArgument {
  const range = targetRange(doc, sel);
  return { uri: doc.uri, range, diagnostics: diagnosticsIn(diagnostics, range) };
}

export function explainArgument(doc: DocumentLike, sel: SelectionLike): ExplainArgument {
  return { uri: doc.uri, range: targetRange(doc, sel) };
}

export function refactorArgument(doc: DocumentLike, sel: SelectionLike, instruction: string): RefactorArgument {
  return { uri: doc.uri, range: targetRange(doc, sel), instruction };
}

/** {prompt} plus the file when there is one, plus the selection when it is not empty. */
export function askArgument(prompt: string, doc?: DocumentLike, sel?: SelectionLike): AskArgument {
  const out: AskArgument = { prompt };
  if (doc) {
    out.uri = doc.uri;
    if (sel && !isEmpty(sel)) {
      out.range = targetRange(doc, sel);
    }
  }
  return out;
}

export function runArgument(prompt: string): RunArgument {
  return { prompt };
}

function isPosition(v: unknown): v is Position {
  const p = v as Position;
  return typeof p === 'object' && p !== null &&
    Number.isInteger(p.line) && p.line >= 0 && Number.isInteger(p.character) && p.character >= 0;
}

export function isRange(v: unknown): v is Range {
  const r = v as Range;
  return typeof r === 'object' && r !== null && isPosition(r.start) && isPosition(r.end);
}

/**
 * The argument a code action passed to one of our commands (`[{uri, range, …}]` in the
 * contract), or undefined when the command was run from the palette (no argument, or a
 * vscode.Uri from an explorer menu).
 */
export function codeActionArgument(v: unknown): { uri: string; range: Range; [k: string]: unknown } | undefined {
  const o = v as { uri?: unknown; range?: unknown };
  if (typeof o === 'object' && o !== null && typeof o.uri === 'string' && isRange(o.range)) {
    return o as { uri: string; range: Range };
  }
  return undefined;
}

/** A prompt or instruction typed by the user: trimmed, undefined when empty. */
export function cleanPrompt(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}
