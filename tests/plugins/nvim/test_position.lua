-- qcoder.position (byte <-> UTF-16 columns, ranges, diagnostics) and the option checks of
-- qcoder.setup, without a server.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h') .. '/harness.lua')

H.run(function()
  local p = require('qcoder.position')
  local q = require('qcoder')

  -- 'a' 1 byte/1 unit, 'é' 2/1, '€' 3/1, '😀' 4/2.
  local s = 'aé€😀b'
  H.eq({ p.utf16_col(s, 0), p.utf16_col(s, 1), p.utf16_col(s, 3), p.utf16_col(s, 6), p.utf16_col(s, 10), p.utf16_col(s, 11) },
    { 0, 1, 2, 3, 5, 6 }, 'utf16_col at character starts')
  H.eq({ p.utf16_col(s, 2), p.utf16_col(s, 8) }, { 1, 3 }, 'utf16_col inside a character counts to its start')
  H.eq(p.utf16_col(s, 99), 6, 'utf16_col past the end is the line length')
  H.eq({ p.byte_col(s, 0), p.byte_col(s, 1), p.byte_col(s, 2), p.byte_col(s, 3), p.byte_col(s, 5), p.byte_col(s, 6) },
    { 0, 1, 3, 6, 10, 11 }, 'byte_col at character starts')
  H.eq(p.byte_col(s, 4), 6, 'byte_col inside a surrogate pair maps to the character start')
  H.eq(p.byte_col(s, 99), #s, 'byte_col past the end is the line end')
  H.eq({ p.char_len(s, 0), p.char_len(s, 1), p.char_len(s, 3), p.char_len(s, 6), p.char_len(s, 11) },
    { 1, 2, 3, 4, 0 }, 'char_len')
  local bad = 'a\128\255b'  -- stray continuation byte and an invalid lead byte
  H.eq({ p.utf16_col(bad, 4), p.byte_col(bad, 2) }, { 4, 2 }, 'invalid UTF-8 bytes count one unit each')
  H.eq(p.utf16_col('x\240\159', 3), 1, 'a truncated 4-byte sequence at the end is not counted')
  H.eq(p.utf16_len(''), 0, 'empty line')

  local lines = { 'héllo', '😀😀' }
  local get = function(r)
    return lines[r + 1]
  end
  H.eq(p.line_range(get, 0, 1), { start = { line = 0, character = 0 }, ['end'] = { line = 1, character = 4 } },
    'line_range ends at the UTF-16 end of the last line')
  H.eq(p.char_range(get, 0, 1, 1, 4), { start = { line = 0, character = 1 }, ['end'] = { line = 1, character = 2 } },
    'char_range converts both ends')
  H.eq(p.diagnostic_to_lsp({ lnum = 1, col = 4, end_lnum = 1, end_col = 8, severity = 2, message = 'm', source = 's',
    user_data = { lsp = { code = 'E1', tags = { 1 }, data = { x = 1 } } } }, get),
    { range = { start = { line = 1, character = 2 }, ['end'] = { line = 1, character = 4 } },
      severity = 2, message = 'm', source = 's', code = 'E1', tags = { 1 }, data = { x = 1 } },
    'diagnostic_to_lsp converts columns and keeps LSP-only fields')

  -- The help file has valid, unique tags (helptags fails on duplicates).
  local docdir = vim.fn.tempname()
  vim.fn.mkdir(docdir, 'p')
  vim.fn.writefile(vim.fn.readfile(H.plugin .. '/doc/qcoder.txt'), docdir .. '/qcoder.txt')
  local ok_tags, tags_err = pcall(vim.cmd, 'helptags ' .. vim.fn.fnameescape(docdir))
  H.ok(ok_tags, 'helptags accepts doc/qcoder.txt', tags_err)
  local tags = table.concat(vim.fn.readfile(docdir .. '/tags'), '\n')
  for _, tag in ipairs({ 'qcoder-setup', ':QcoderAsk', ':QcoderFix', ':QcoderRun', ':QcoderExplain',
    ':QcoderRefactor', ':QcoderComplete', ':QcoderCancel', 'qcoder-completion' }) do
    H.ok(tags:find(tag .. '\t', 1, true) ~= nil, 'help tag ' .. tag)
  end

  -- Options -> server command and initializationOptions.
  local c = assert(q._validate({ cmd = { '/opt/qcoder', 'lsp' }, remote = 'https://gpu:8000/v1', mode = 'read-only' }))
  H.eq(q._server_cmd(c), { '/opt/qcoder', 'lsp', '--remote', 'https://gpu:8000/v1', '--mode', 'read-only' },
    'remote and mode become flags')
  H.eq(q._init_options(c), { remote = 'https://gpu:8000/v1', mode = 'read-only' }, 'and initializationOptions')
  local d = assert(q._validate({}))
  H.eq({ q._server_cmd(d), q._init_options(d) }, { { 'qcoder', 'lsp' } }, 'defaults: qcoder lsp, no options')
  H.eq(assert(q._validate({ model = '~/m.gguf' })).model, vim.fn.expand('~') .. '/m.gguf', '~ in model is expanded')
  for _, bad_opts in ipairs({
    { cmd = 'qcoder lsp' }, { model = '' }, { mode = 'yolo' }, { filetypes = 'c' }, { root_dir = 3 },
    { inline_completion = 'yes' }, { on_attach = true }, { cmd_env = 'X=1' },
  }) do
    local ok, err = q._validate(bad_opts)
    H.ok(ok == nil and type(err) == 'string', 'refused: ' .. vim.inspect(bad_opts, { newline = ' ', indent = '' }), err)
  end
end)
