-- plugins/nvim against the FAKE server (tests/plugins/fake-lsp-server.mjs): the plugin
-- starts the server with the configured command, arguments and initializationOptions, each
-- :Qcoder command sends the contract's executeCommand arguments (uri, UTF-16 ranges,
-- diagnostics), code actions route through the plugin, applyEdit changes the buffer (and
-- undo reverts it), :QcoderComplete inserts the server's item, progress shows in
-- qcoder.status() and :QcoderCancel sends $/cancelRequest.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h') .. '/harness.lua')

H.run(function()
  local q = require('qcoder')
  local dir = H.project(true)
  local trace_path = vim.fn.tempname() .. '-trace.jsonl'
  local fake = vim.fn.fnamemodify(H.dir .. '/../fake-lsp-server.mjs', ':p')
  local function trace()
    return H.read_trace(trace_path)
  end
  local function executes(command)
    return H.messages(trace(), 'in', 'workspace/executeCommand', function(m)
      return m.params.command == command
    end)
  end

  -- Bad options are refused with a message that says what to change.
  H.ok(q.setup({ mode = 'bogus' }) == false and #H.noted('mode must be one of') == 1,
    'setup refuses an unknown mode')
  H.ok(q.setup({ model = 'm.gguf', remote = 'http://h' }) == false and #H.noted('either model or remote') == 1,
    'setup refuses model and remote together')
  H.ok(q.setup({ remote = 'ftp://h' }) == false and #H.noted('http:// or https://') == 1,
    'setup refuses a non-http remote')
  H.ok(q.setup({ colour = 'blue' }) == false and #H.noted('unknown option "colour"') == 1,
    'setup refuses an unknown option')
  H.ok(q.setup({ cmd = {} }) == false, 'setup refuses an empty cmd')

  H.ok(q.setup({
    cmd = { 'node', fake, '--trace', trace_path, 'lsp' },
    model = 'script:/tmp/qcoder-script.json',
    mode = 'auto-edit',
  }), 'setup accepts valid options')
  H.ok(vim.fn.exists(':QcoderFix') == 2 and vim.fn.exists(':QcoderComplete') == 2, 'commands are defined')

  local lines = {
    'int main(void) {',
    '  puts("héllo 😀 wörld");',
    '  return 0',
    '}',
  }
  vim.cmd('cd ' .. vim.fn.fnameescape(dir))
  local buf = H.edit(dir .. '/src/main.c', lines, 'c')
  local uri = vim.uri_from_bufnr(buf)
  H.wait(5000, function()
    local id = q.clients()[1]
    local c = id and vim.lsp.get_client_by_id(id)
    return c and c.initialized and #H.messages(trace(), 'in', 'textDocument/didOpen') == 1
  end, 'the client to start, initialize and open the buffer')
  H.eq(#q.clients(), 1, 'one client for the project')

  -- Started with the configured command, arguments and initializationOptions.
  local t = trace()
  H.eq(t[1].argv, { 'lsp', '--model', 'script:/tmp/qcoder-script.json', '--mode', 'auto-edit' },
    'server argv = cmd + --model + --mode')
  local init = H.messages(t, 'in', 'initialize')[1] or { params = {} }
  H.eq(init.params.initializationOptions, { model = 'script:/tmp/qcoder-script.json', mode = 'auto-edit' },
    'initializationOptions carry model and mode')
  H.eq(init.params.rootUri, vim.uri_from_fname(dir), 'root is the folder with .git')
  H.ok(type(init.params.capabilities.textDocument.inlineCompletion) == 'table',
    'client announces textDocument.inlineCompletion')
  H.eq(H.messages(t, 'in', 'textDocument/didOpen')[1].params.textDocument.uri, uri, 'didOpen for the buffer')

  -- :QcoderFix on the cursor line, with the diagnostics on that line only, after an
  -- unsaved change that the server must have seen first.
  local ns = vim.api.nvim_create_namespace('qcoder-test')
  vim.diagnostic.set(ns, buf, {
    { lnum = 1, col = 2, end_lnum = 1, end_col = 6, severity = vim.diagnostic.severity.WARN, message = 'implicit puts', source = 'cc' },
    { lnum = 2, col = 10, end_lnum = 2, end_col = 10, severity = vim.diagnostic.severity.ERROR, message = "expected ';'", source = 'cc' },
  })
  vim.api.nvim_buf_set_lines(buf, 3, 4, false, { '} /* unsaved */' })
  vim.api.nvim_win_set_cursor(0, { 3, 4 })
  vim.cmd('QcoderFix')
  H.wait(5000, function()
    return H.lines(buf)[3] == 'FIXED'
  end, 'the fix edit to land in the buffer')
  local fix = executes('qcoder.fix')[1]
  H.eq(fix and fix.params.arguments, { {
    uri = uri,
    range = { start = { line = 2, character = 0 }, ['end'] = { line = 2, character = 10 } },
    diagnostics = { {
      range = { start = { line = 2, character = 10 }, ['end'] = { line = 2, character = 10 } },
      severity = 1, message = "expected ';'", source = 'cc',
    } },
  } }, ':QcoderFix sends {uri, range of the line, diagnostics on it}')
  local changes = H.messages(trace(), 'in', 'textDocument/didChange')
  local last_change = changes[#changes]
  H.ok(last_change and last_change.params.contentChanges[1].text:find('unsaved', 1, true),
    'the server saw the unsaved text (didChange)')
  local answer
  H.wait(5000, function()
    local apply = H.messages(trace(), 'out', 'workspace/applyEdit')[1]
    answer = apply and H.response(trace(), 'in', apply.id)
    return answer ~= nil
  end, 'the answer to applyEdit')
  H.ok(answer and answer.result and answer.result.applied == true, 'Neovim answers applyEdit with applied=true')
  H.wait(3000, function()
    return #H.noted('qcoder.fix applied: true') > 0
  end, 'the fix result notification')
  H.eq(#H.noted('qcoder.fix applied: true'), 1, 'result and showMessage are shown once, not twice')
  H.eq(#H.noted('changed: src/main.c'), 1, 'changed files are listed')
  vim.cmd('silent undo')
  H.eq(H.lines(buf)[3], '  return 0', 'undo reverts the applied edit')

  -- :QcoderFix with a hint sends it as the instruction.
  vim.cmd('QcoderFix  the semicolon is missing ')
  H.wait(5000, function()
    return #executes('qcoder.fix') == 2 and H.lines(buf)[3] == 'FIXED'
  end, 'the second fix')
  H.eq(executes('qcoder.fix')[2].params.arguments[1].instruction, 'the semicolon is missing',
    ':QcoderFix {hint} sends the instruction')
  H.wait(3000, function()
    return #H.noted('qcoder.fix applied: true') == 2
  end, 'the second fix result to be shown (once)')
  vim.cmd('silent undo')

  -- :'<,'>QcoderExplain on a characterwise selection "héllo 😀" (bytes 8..18, UTF-16 8..16).
  H.keys('2G9|v6l<Esc>')
  vim.cmd("'<,'>QcoderExplain")
  H.wait(5000, function()
    return #H.noted('EXPLAINED') > 0
  end, 'the explain result')
  local explain = executes('qcoder.explain')[1]
  H.eq(explain and explain.params.arguments, { {
    uri = uri,
    range = { start = { line = 1, character = 8 }, ['end'] = { line = 1, character = 16 } },
  } }, ':QcoderExplain on a visual selection sends a UTF-16 range')
  H.eq(#H.noted('EXPLAINED 1:8-1:16'), 1, 'the explanation is shown once')

  -- :'<,'>QcoderRefactor on a linewise selection of lines 1-2.
  H.keys('1GVj<Esc>')
  vim.cmd("'<,'>QcoderRefactor rename main")
  H.wait(5000, function()
    return H.lines(buf)[1] == 'REFACTORED(rename main)'
  end, 'the refactor edit')
  local refactor = executes('qcoder.refactor')[1]
  H.eq(refactor and refactor.params.arguments, { {
    uri = uri,
    range = { start = { line = 0, character = 0 }, ['end'] = { line = 1, character = 25 } },
    instruction = 'rename main',
  } }, ':QcoderRefactor sends whole lines (UTF-16 end) and the instruction')
  vim.cmd('silent undo')
  H.eq(H.lines(buf)[2], lines[2], 'undo restores the refactored lines')

  -- :QcoderAsk with no range sends the file, :QcoderRun only the prompt.
  vim.cmd('QcoderAsk what does main return?')
  vim.cmd('QcoderRun make it faster')
  H.wait(5000, function()
    return #H.noted('ANSWER: what does main return?') > 0 and #H.noted('RAN: make it faster') > 0
  end, 'the ask and run results')
  H.eq((executes('qcoder.ask')[1] or { params = {} }).params.arguments,
    { { prompt = 'what does main return?', uri = uri } }, ':QcoderAsk sends {prompt, uri}')
  H.eq((executes('qcoder.run')[1] or { params = {} }).params.arguments,
    { { prompt = 'make it faster' } }, ':QcoderRun sends {prompt}')

  -- Code actions come from the server and run through the plugin.
  local chosen = {}
  vim.ui.select = function(items, _, on_choice)
    local pick
    for i, item in ipairs(items) do
      local action = item.action or item[2] or item
      local title = type(action) == 'table' and action.title or tostring(action)
      chosen[#chosen + 1] = title
      if title == vim.g.qcoder_test_pick then
        pick = i
      end
    end
    on_choice(pick and items[pick] or nil, pick)
  end
  vim.ui.input = function(_, on_confirm)
    on_confirm('inline it')
  end
  -- The action's range is the cursor position (empty): the fake inserts there.
  vim.api.nvim_win_set_cursor(0, { 3, 2 })
  vim.g.qcoder_test_pick = 'qcoder: fix'
  vim.lsp.buf.code_action()
  H.wait(5000, function()
    return H.lines(buf)[3] == '  FIXEDreturn 0'
  end, 'the code action fix to land')
  H.ok(vim.tbl_contains(chosen, 'qcoder: explain') and vim.tbl_contains(chosen, 'qcoder: refactor…'),
    'the server offers fix, explain and refactor actions', vim.inspect(chosen))
  H.eq(#executes('qcoder.fix'), 3, 'the fix action sent qcoder.fix')
  vim.cmd('silent undo')
  vim.g.qcoder_test_pick = 'qcoder: refactor…'
  vim.lsp.buf.code_action()
  H.wait(5000, function()
    return #executes('qcoder.refactor') == 2
  end, 'the refactor action')
  local action_refactor = executes('qcoder.refactor')[2]
  H.eq(action_refactor and action_refactor.params.arguments[1].instruction, 'inline it',
    'the refactor action asks for the instruction and passes it')
  H.wait(5000, function()
    return H.lines(buf)[3] == '  REFACTORED(inline it)return 0'
  end, 'the refactor action edit')
  vim.cmd('silent undo')

  -- :QcoderComplete at byte 19 of line 2 (after the emoji: UTF-16 column 16).
  vim.api.nvim_win_set_cursor(0, { 2, 19 })
  vim.cmd('QcoderComplete')
  H.wait(5000, function()
    return H.lines(buf)[2] == '  puts("héllo 😀<X> wörld");'
  end, 'the completion to be inserted at the cursor')
  local inline = H.messages(trace(), 'in', 'textDocument/inlineCompletion')[1]
  H.eq(inline and inline.params.position, { line = 1, character = 16 }, 'inlineCompletion position is UTF-16')
  H.eq(inline and inline.params.context, { triggerKind = 1 }, 'inlineCompletion is Invoked')
  H.eq(vim.api.nvim_win_get_cursor(0), { 2, 22 }, 'the cursor ends after the inserted text')

  -- From a buffer that is not a file, :QcoderAsk uses the project's client and sends no uri.
  vim.cmd('enew')
  vim.cmd('QcoderAsk where is main?')
  H.wait(5000, function()
    return #H.noted('ANSWER: where is main?') > 0
  end, 'the ask result from a scratch buffer')
  H.eq((executes('qcoder.ask')[2] or { params = {} }).params.arguments, { { prompt = 'where is main?' } },
    ':QcoderAsk from a scratch buffer sends {prompt}')
  H.eq(#q.clients(), 1, 'no second client for the same project')
  vim.cmd('buffer ' .. buf)

  -- Progress shows in status(); :QcoderCancel sends $/cancelRequest for the running command.
  vim.cmd('QcoderRun slow')
  H.wait(5000, function()
    return q.status() == 'qcoder: run — thinking (50%)'
  end, 'progress in qcoder.status()')
  local slow = executes('qcoder.run')[2]
  vim.cmd('QcoderCancel')
  H.wait(5000, function()
    return #H.noted('run cancelled') > 0
  end, 'the cancelled notification')
  H.wait(5000, function()
    return #H.messages(trace(), 'in', '$/cancelRequest') > 0
  end, 'the server to receive $/cancelRequest')
  local cancels = H.messages(trace(), 'in', '$/cancelRequest')
  H.ok(slow and #cancels >= 1 and cancels[#cancels].params.id == slow.id,
    '$/cancelRequest carries the executeCommand id')
  H.wait(3000, function()
    return q.status() == ''
  end, 'status() to clear after the run ends')

  -- Shutdown is clean.
  H.stop_clients()
  t = trace()
  H.ok(#H.messages(t, 'in', 'shutdown') == 1 and #H.messages(t, 'in', 'exit') == 1,
    'stop sends shutdown and exit')
end)
