-- The REAL `qcoder lsp` (and the daemon it starts, with the scripted model) driven by
-- plugins/nvim in headless Neovim: the code action "qcoder: fix" → workspace/executeCommand
-- → the agent reads the unsaved buffer through the lsp → its edit comes back as
-- workspace/applyEdit and changes the buffer (not the file), undo reverts it; progress in
-- qcoder.status(); explain runs read-only; :QcoderComplete inserts an inline completion
-- whose FIM prompt holds the buffer's prefix/suffix and the other open buffer.
-- Run by tests/lsp/run_editor.sh (environment: see there).
local H = dofile(os.getenv('QCODER_PLUGIN_HARNESS'))

local function call(name, params)
  local s = '<tool_call>\n<function=' .. name .. '>\n'
  for _, kv in ipairs(params) do
    s = s .. '<parameter=' .. kv[1] .. '>\n' .. kv[2] .. '\n</parameter>\n'
  end
  return s .. '</function>\n</tool_call>'
end

local function prompts()
  local out = {}
  local path = os.getenv('QCODER_SCRIPT_PROMPT_LOG')
  for _, l in ipairs(vim.fn.filereadable(path) == 1 and vim.fn.readfile(path) or {}) do
    out[#out + 1] = vim.fn.json_decode(l)
  end
  return out
end

-- Neovim 0.7 prints the label of a workspace edit; keep it off the TAP stream.
print = function(...)
  io.stderr:write(table.concat(vim.tbl_map(tostring, { ... }), ' ') .. '\n')
end

H.run(function()
  local q = require('qcoder')
  local tmp = os.getenv('QCODER_LSP_TEST_DIR')
  local dir = H.project(false)
  vim.fn.writefile({ 'A tiny C project.' }, dir .. '/AGENTS.md') -- the root marker
  local script = tmp .. '/script.json'
  vim.fn.writefile({ vim.fn.json_encode({
    -- slow enough for the progress to be seen
    { text = call('read_file', { { 'path', 'src/main.c' } }), delay_ms = 40 },
    call('edit_file', { { 'path', 'src/main.c' }, { 'old_string', '  return 0' }, { 'new_string', '  return 0;' } }),
    'Added the missing semicolon.',
    { text = 'int y = 2; ', raw = true },
  }) }, script)

  H.ok(q.setup({
    cmd = H.server_cmd({ 'qcoder', 'lsp' }),
    model = 'script:' .. script,
    mode = 'auto-edit',
  }), 'setup with the real qcoder lsp')
  vim.cmd('cd ' .. vim.fn.fnameescape(dir))
  local util = H.edit(dir .. '/src/util.h', { 'int util_add(int a, int b);' }, 'c')
  local path = dir .. '/src/main.c'
  local on_disk = { 'int main(void) {', '  return 0', '}' }
  local buf = H.edit(path, on_disk, 'c')
  H.wait(15000, function()
    local id = q.clients()[1]
    local c = id and vim.lsp.get_client_by_id(id)
    return c and c.initialized and vim.lsp.buf_is_attached(buf, id) and vim.lsp.buf_is_attached(util, id)
  end, 'qcoder lsp to start and attach both buffers')
  local client = vim.lsp.get_client_by_id(q.clients()[1])
  H.ok(client and client.server_capabilities.inlineCompletionProvider == true, 'the server offers inline completion')

  -- An unsaved change the agent must see, and a diagnostic on the broken line.
  vim.api.nvim_buf_set_lines(buf, 0, 0, false, { '// unsaved 😀' })
  vim.cmd('let &undolevels = &undolevels') -- an undo break: the agent's edit is undone on its own
  local ns = vim.api.nvim_create_namespace('qcoder-lsp-test')
  vim.diagnostic.set(ns, buf, { { lnum = 2, col = 10, end_lnum = 2, end_col = 10,
    severity = vim.diagnostic.severity.ERROR, message = "expected ';'", source = 'cc' } })

  -- The code action, picked from what the server offers.
  local offered = {}
  vim.ui.select = function(items, _, on_choice)
    local pick
    for i, item in ipairs(items) do
      local action = item.action or item[2] or item
      offered[#offered + 1] = action.title
      if action.title == 'qcoder: fix' then
        pick = i
      end
    end
    on_choice(pick and items[pick] or nil, pick)
  end
  vim.api.nvim_win_set_cursor(0, { 3, 2 })
  vim.lsp.buf.code_action()
  H.wait(10000, function()
    return q.status():find('qcoder: fix', 1, true) ~= nil
  end, 'progress of the fix in qcoder.status()')
  H.wait(15000, function()
    return H.lines(buf)[3] == '  return 0;'
  end, 'the agent\'s edit to land in the buffer')
  H.ok(vim.tbl_contains(offered, 'qcoder: explain') and vim.tbl_contains(offered, 'qcoder: refactor…'),
    'the server offers fix, explain and refactor', vim.inspect(offered))
  H.eq(H.lines(buf), { '// unsaved 😀', 'int main(void) {', '  return 0;', '}' },
    'only the broken line changed; the unsaved line is kept')
  H.eq(vim.fn.readfile(path), on_disk, 'the file on disk is untouched (the edit went to the buffer)')
  -- the server's showMessage comes first, the command's result (with the files) after it
  H.wait(10000, function()
    return #H.noted('Added the missing semicolon.') > 0 and #H.noted('changed: src/main.c') > 0
  end, 'the fix result notification')
  H.eq(#H.noted('Added the missing semicolon.'), 1, 'the result is shown once')
  H.eq(#H.noted('changed: src/main.c'), 1, 'the changed file is listed')
  local p = prompts()
  H.ok(#p == 3 and p[1].prompt:find('Fix the problem in line 3 of `src/main.c`', 1, true)
    and p[1].prompt:find("expected ';'", 1, true), 'the agent was asked to fix line 3 with its diagnostic')
  -- line 1 of read_file's numbered output (not the quote in the user prompt)
  H.ok(p[2] and p[2].prompt:find('1\t// unsaved 😀', 1, true), 'the agent read the unsaved buffer')
  H.wait(5000, function()
    return q.status() == ''
  end, 'status() to clear')
  vim.cmd('silent undo')
  H.eq(H.lines(buf)[3], '  return 0', 'undo reverts the agent\'s edit')

  -- :QcoderExplain runs read-only: the scripted edit is refused, the answer is shown.
  vim.cmd('2,3QcoderExplain')
  H.wait(15000, function()
    return #H.noted('Added the missing semicolon.') == 2
  end, 'the explanation')
  H.eq(H.lines(buf), { '// unsaved 😀', 'int main(void) {', '  return 0', '}' }, 'explain changed nothing')
  H.eq(vim.fn.readfile(path), on_disk, 'explain wrote nothing')

  -- :QcoderComplete at "  |return 0": the completion is inserted at the cursor.
  local before = #prompts()
  vim.api.nvim_win_set_cursor(0, { 3, 2 })
  vim.cmd('QcoderComplete')
  H.wait(15000, function()
    return H.lines(buf)[3] == '  int y = 2; return 0'
  end, 'the inline completion to be inserted')
  local raw = prompts()[before + 1]
  H.ok(raw and raw.raw, 'the completion was a raw (FIM) model call')
  H.ok(raw and raw.prompt:find('<|file_sep|>src/util.h\nint util_add(int a, int b);\n', 1, true),
    'the FIM prompt holds the other open buffer', raw and raw.prompt)
  H.ok(raw and raw.prompt:find('<|file_sep|>src/main.c\n<|fim_prefix|>// unsaved 😀\nint main(void) {\n  '
    .. '<|fim_suffix|>return 0\n}\n<|fim_middle|>', 1, true), 'the FIM prompt holds the buffer around the cursor',
    raw and raw.prompt)

  H.stop_clients()
  H.eq(#H.noted('qcoder lsp exited'), 0, 'qcoder lsp exits cleanly (status 0)')
end)
