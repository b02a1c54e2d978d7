-- Harness for headless Neovim tests of plugins/nvim (Neovim 0.7 and newer).
--
-- A test file is run as `nvim --headless -u NONE -i NONE -n -c 'luafile TEST.lua'` (run.sh
-- does that with a timeout). It loads this file with dofile, calls H.run(fn), and inside fn
-- uses H.ok / H.eq (TAP lines on stdout), H.wait (vim.wait with a failure when it times
-- out), H.notes (what the plugin passed to vim.notify), H.edit (a file buffer in a temporary
-- project) and the trace helpers for servers that write a JSONL trace. H.run always ends
-- Neovim: exit code 0 when every check passed, 1 otherwise (also on a Lua error).
--
-- The server command is a parameter: H.server_cmd(default) returns the JSON list in
-- $QCODER_NVIM_SERVER_CMD when set, else `default`, so a test can drive the fake server
-- (tests/plugins/fake-lsp-server.mjs) or the real `qcoder lsp`.

local H = {}

H.dir = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')
H.repo = vim.fn.fnamemodify(H.dir .. '/../../..', ':p'):gsub('/$', '')
H.plugin = H.repo .. '/plugins/nvim'

vim.opt.runtimepath:prepend(H.plugin)
vim.o.swapfile = false
vim.o.hidden = true

local count, failed = 0, 0

local function out(s)
  io.stdout:write(s .. '\n')
  io.stdout:flush()
end

--- Record one check.
function H.ok(cond, name, detail)
  count = count + 1
  if cond then
    out(string.format('ok %d - %s', count, name))
  else
    failed = failed + 1
    out(string.format('not ok %d - %s', count, name))
    if detail then
      for line in tostring(detail):gmatch('[^\n]+') do
        out('#   ' .. line)
      end
    end
  end
  return cond
end

--- Check deep equality, printing both values on failure.
function H.eq(got, want, name)
  return H.ok(vim.deep_equal(got, want), name,
    'got:  ' .. vim.inspect(got) .. '\nwant: ' .. vim.inspect(want))
end

--- Wait up to `ms` for fn() to be true, processing events; a timeout is a failed check.
function H.wait(ms, fn, what)
  local done = vim.wait(ms, function()
    local ok, v = pcall(fn)
    return ok and v
  end, 20)
  if not done then
    H.ok(false, 'timed out waiting for ' .. what)
  end
  return done
end

--- What the plugin passed to vim.notify: list of { msg, level }.
H.notes = {}
vim.notify = function(msg, level)
  table.insert(H.notes, { msg = msg, level = level })
end

--- Notifications whose text contains `text` (plain match).
function H.noted(text)
  local out_ = {}
  for _, n in ipairs(H.notes) do
    if type(n.msg) == 'string' and n.msg:find(text, 1, true) then
      out_[#out_ + 1] = n
    end
  end
  return out_
end

--- The server command: $QCODER_NVIM_SERVER_CMD (a JSON list) or `default`.
function H.server_cmd(default)
  local env = os.getenv('QCODER_NVIM_SERVER_CMD')
  if env and env ~= '' then
    return vim.fn.json_decode(env)
  end
  return default
end

--- A new temporary project folder (with a .git marker when `git` is true).
function H.project(git)
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir .. '/src', 'p')
  if git then
    vim.fn.mkdir(dir .. '/.git', 'p')
  end
  return vim.loop.fs_realpath(dir)
end

--- Write `lines` to `path`, edit it, set its filetype; returns the buffer number.
function H.edit(path, lines, filetype)
  vim.fn.mkdir(vim.fn.fnamemodify(path, ':h'), 'p')
  vim.fn.writefile(lines, path)
  vim.cmd('edit ' .. vim.fn.fnameescape(path))
  if filetype then
    vim.cmd('setfiletype ' .. filetype)
  end
  return vim.api.nvim_get_current_buf()
end

--- Decoded JSONL trace lines (a missing file is an empty trace).
function H.read_trace(path)
  local lines = vim.fn.filereadable(path) == 1 and vim.fn.readfile(path) or {}
  local t = {}
  for _, l in ipairs(lines) do
    local ok, v = pcall(vim.fn.json_decode, l)
    if ok then
      t[#t + 1] = v
    end
  end
  return t
end

--- Messages of direction `dir` ('in' = received by the server) with `method`, optionally
--- filtered by pred(msg).
function H.messages(trace, dir, method, pred)
  local r = {}
  for _, e in ipairs(trace) do
    if e.dir == dir and type(e.msg) == 'table' and e.msg.method == method and (not pred or pred(e.msg)) then
      r[#r + 1] = e.msg
    end
  end
  return r
end

--- The response (in the trace, direction `dir`) to request `id`.
function H.response(trace, dir, id)
  for _, e in ipairs(trace) do
    if e.dir == dir and type(e.msg) == 'table' and e.msg.method == nil and e.msg.id == id then
      return e.msg
    end
  end
  return nil
end

--- Type normal-mode keys (<Esc> etc. allowed) and execute them now.
function H.keys(keys)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), 'nx', false)
end

--- Lines of buffer `bufnr`.
function H.lines(bufnr)
  return vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

local function finish()
  pcall(function()
    local q = require('qcoder')
    local ids = q.clients()
    q.stop()
    vim.wait(5000, function()
      for _, id in ipairs(ids) do
        if vim.lsp.get_client_by_id(id) then
          return false
        end
      end
      return true
    end, 20)
  end)
  out(string.format('1..%d', count))
  if failed > 0 or count == 0 then
    out(string.format('# %d of %d checks failed', failed, count))
    vim.cmd('cquit 1')
  else
    out(string.format('# all %d checks passed', count))
    vim.cmd('qall!')
  end
end

--- Run the test body; always ends Neovim with the right exit code.
function H.run(fn)
  local ok, err = xpcall(fn, debug.traceback)
  if not ok then
    H.ok(false, 'test body raised an error', err)
  end
  finish()
end

--- Stop the plugin's clients now and wait for them to exit (the test may then read what
--- the server received at shutdown).
function H.stop_clients()
  local q = require('qcoder')
  local ids = q.clients()
  q.stop()
  return H.wait(5000, function()
    for _, id in ipairs(ids) do
      if vim.lsp.get_client_by_id(id) then
        return false
      end
    end
    return true
  end, 'the qcoder clients to exit')
end

return H
