-- qcoder.position: byte columns (what Neovim uses) <-> UTF-16 code units (what LSP uses).
--
-- LSP positions count UTF-16 code units by default and `qcoder lsp` speaks only that
-- ("positionEncoding": "utf-16"). Neovim counts bytes. The conversion is done here in plain
-- Lua on the line's text, so it behaves the same on every Neovim version (the signature of
-- vim.str_utfindex changed in 0.11) and can be tested without a running editor.
--
-- A UTF-8 lead byte tells the sequence length; a 4-byte sequence (a code point above
-- U+FFFF) is a surrogate pair, 2 UTF-16 units; everything else is 1 unit. A stray
-- continuation byte (invalid UTF-8) counts as one unit, as Neovim displays it as one cell.

local M = {}

-- Length in bytes of the UTF-8 sequence whose lead byte is `b`, and its UTF-16 width.
local function seq(b)
  if b >= 0xF0 and b < 0xF8 then
    return 4, 2
  elseif b >= 0xE0 and b < 0xF0 then
    return 3, 1
  elseif b >= 0xC0 and b < 0xE0 then
    return 2, 1
  end
  return 1, 1
end

--- Byte length of the character that starts at 0-based byte `col` of `line` (0 past the end).
function M.char_len(line, col)
  if col < 0 or col >= #line then
    return 0
  end
  local len = seq(line:byte(col + 1))
  return math.min(len, #line - col)
end

--- UTF-16 code units in the first `col` bytes of `line`. A `col` inside a character counts
--- up to that character's start; a `col` past the end counts the whole line.
function M.utf16_col(line, col)
  local limit = math.min(col, #line)
  local units, i = 0, 0
  while i < limit do
    local len, width = seq(line:byte(i + 1))
    if i + len > limit then
      break
    end
    units = units + width
    i = i + len
  end
  return units
end

--- Byte offset of UTF-16 column `units` in `line`. A column inside a surrogate pair maps to
--- the start of that character; a column past the end maps to the end of the line.
function M.byte_col(line, units)
  local i, seen = 0, 0
  while i < #line do
    local len, width = seq(line:byte(i + 1))
    if seen + width > units then
      return i
    end
    seen = seen + width
    i = math.min(i + len, #line)
  end
  return #line
end

--- UTF-16 length of a whole line.
function M.utf16_len(line)
  return M.utf16_col(line, #line)
end

--- LSP range covering whole lines `first`..`last` (0-based, inclusive): from the start of
--- the first line to the end of the last line's text. `get_line(n)` returns line n's text.
function M.line_range(get_line, first, last)
  return {
    start = { line = first, character = 0 },
    ['end'] = { line = last, character = M.utf16_len(get_line(last)) },
  }
end

--- LSP range of a characterwise selection: (srow, scol) is the first selected byte,
--- (erow, ecol) the first byte *after* the selection (exclusive), rows 0-based.
function M.char_range(get_line, srow, scol, erow, ecol)
  return {
    start = { line = srow, character = M.utf16_col(get_line(srow), scol) },
    ['end'] = { line = erow, character = M.utf16_col(get_line(erow), ecol) },
  }
end

-- Fields of an LSP Diagnostic that Neovim keeps in user_data.lsp (newer versions) and that
-- we pass through untouched when present.
local passthrough = { 'codeDescription', 'tags', 'relatedInformation', 'data' }

--- An LSP Diagnostic from a vim.diagnostic entry (rows and byte columns 0-based). Severity
--- numbers are the same in both (1 error .. 4 hint).
function M.diagnostic_to_lsp(d, get_line)
  local end_lnum = d.end_lnum or d.lnum
  local end_col = d.end_col or d.col
  local out = {
    range = {
      start = { line = d.lnum, character = M.utf16_col(get_line(d.lnum), d.col or 0) },
      ['end'] = { line = end_lnum, character = M.utf16_col(get_line(end_lnum), end_col or 0) },
    },
    severity = d.severity,
    message = d.message,
    source = d.source,
    code = d.code,
  }
  local lsp = d.user_data and d.user_data.lsp
  if type(lsp) == 'table' then
    for _, k in ipairs(passthrough) do
      out[k] = lsp[k]
    end
    if out.code == nil then
      out.code = lsp.code
    end
  end
  return out
end

return M
