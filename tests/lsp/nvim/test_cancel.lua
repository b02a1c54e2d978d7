-- The REAL `qcoder lsp` in headless Neovim: a running command shows progress, :QcoderCancel
-- sends $/cancelRequest, the server answers the command -32800 (read back from Neovim's LSP
-- log: Neovim 0.7 drops the answer of a request it cancelled), ends the progress, and keeps
-- serving. Run by tests/lsp/run_editor.sh.
local H = dofile(os.getenv('QCODER_PLUGIN_HARNESS'))

H.run(function()
  local q = require('qcoder')
  local tmp = os.getenv('QCODER_LSP_TEST_DIR')
  local dir = H.project(false)
  vim.fn.writefile({ 'A tiny project.' }, dir .. '/AGENTS.md')
  local script = tmp .. '/script.json'
  -- one slow answer: about 10 s at 7 bytes per 40 ms
  vim.fn.writefile({ vim.fn.json_encode({ { text = string.rep('slow text ', 180), delay_ms = 40 } }) }, script)
  vim.lsp.set_log_level('debug')
  local log_path = vim.lsp.get_log_path()

  H.ok(q.setup({ cmd = H.server_cmd({ 'qcoder', 'lsp' }), model = 'script:' .. script, mode = 'auto-edit' }), 'setup')
  vim.cmd('cd ' .. vim.fn.fnameescape(dir))
  local buf = H.edit(dir .. '/notes.txt', { 'some text' }, 'text')
  H.wait(15000, function()
    local id = q.clients()[1]
    local c = id and vim.lsp.get_client_by_id(id)
    return c and c.initialized and vim.lsp.buf_is_attached(buf, id)
  end, 'qcoder lsp to start')

  vim.cmd('QcoderRun talk slowly')
  H.wait(15000, function()
    return q.status():find('writing the answer', 1, true) ~= nil
  end, 'progress of the run ("writing the answer")')
  local t0 = vim.loop.now()
  vim.cmd('QcoderCancel')
  H.wait(5000, function()
    return #H.noted('run cancelled') > 0
  end, 'the cancelled notification')
  local function log()
    return vim.fn.filereadable(log_path) == 1 and table.concat(vim.fn.readfile(log_path), '\n') or ''
  end
  H.wait(5000, function()
    return log():find('code = -32800', 1, true) ~= nil
  end, 'the server to answer the command -32800 (RequestCancelled)')
  H.ok(vim.loop.now() - t0 < 3000, 'the cancellation is answered at once, not when the answer would have ended')
  H.ok(log():find('$/cancelRequest', 1, true) ~= nil, 'Neovim sent $/cancelRequest')
  H.wait(5000, function()
    return q.status() == ''
  end, 'the progress to end')

  -- The server still serves: code actions for the buffer.
  local client = vim.lsp.get_client_by_id(q.clients()[1])
  local res = client.request_sync('textDocument/codeAction', {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    range = { start = { line = 0, character = 0 }, ['end'] = { line = 0, character = 4 } },
    context = { diagnostics = {} },
  }, 5000, buf)
  H.eq(res and res.result and #res.result, 3, 'the server answers code actions after the cancel')

  H.stop_clients()
  H.eq(#H.noted('qcoder lsp exited'), 0, 'qcoder lsp exits cleanly')
end)
