-- qcoder: the Neovim client for `qcoder lsp` (see docs/lsp-contract.md and :help qcoder).
--
-- The plugin is a thin LSP client. It starts `qcoder lsp` with Neovim's own LSP client
-- (vim.lsp.start_client on 0.7, vim.lsp.start on 0.8 and newer), one client per project
-- root, and attaches file buffers so the server sees unsaved text. Everything qcoder does
-- is a `workspace/executeCommand` on that client; edits come back as
-- `workspace/applyEdit`, which Neovim applies itself (so `u` undoes them). Code actions are
-- offered by the server and picked with the usual vim.lsp.buf.code_action(); their commands
-- are routed back through this module (client-side `commands`) so they get the same
-- result display, cancellation and status as the :Qcoder* commands.
--
-- Positions sent to the server are UTF-16 (qcoder.position); results are shown with
-- vim.notify. The server announces results with window/showMessage as well, so a result
-- and its announcement are shown once, not twice (see `announce`).

local position = require('qcoder.position')

local M = {}

local levels = vim.log.levels

-- Limits and protocol constants, each with its reason.
local CLIENT_NAME = 'qcoder'                -- the LSP client's name (vim.lsp.start reuses by name + root)
local ANNOUNCE_WINDOW_MS = 10000            -- a result and the server's showMessage for it arrive within this
local REQUEST_CANCELLED = -32800            -- LSP RequestCancelled
local MODES = { ['ask'] = true, ['auto-edit'] = true, ['full-auto'] = true, ['read-only'] = true }
local MESSAGE_LEVELS = { [1] = levels.ERROR, [2] = levels.WARN, [3] = levels.INFO, [4] = levels.DEBUG }

local defaults = {
  cmd = { 'qcoder', 'lsp' },              -- the server command; --model/--remote/--mode are appended
  model = nil,                            -- GGUF path, script:FILE or http(s) URL
  remote = nil,                           -- OpenAI-compatible server URL
  mode = nil,                             -- ask | auto-edit | full-auto | read-only
  filetypes = nil,                        -- list of filetypes to attach to; nil = every file buffer
  root_markers = { '.git', 'AGENTS.md', 'QWEN.md' },
  root_dir = nil,                         -- string or function(bufnr) -> string; overrides markers
  cmd_env = nil,                          -- extra environment for the server process
  inline_completion = true,               -- Neovim >= 0.12: enable native inline completion
  on_attach = nil,                        -- function(client, bufnr) run after qcoder's own
}

-- Every option name (the defaults table cannot list the ones that default to nil).
local OPTION_NAMES = {
  cmd = true, model = true, remote = true, mode = true, filetypes = true, root_markers = true,
  root_dir = true, cmd_env = true, inline_completion = true, on_attach = true,
}

local state = {
  config = nil,      -- validated options, set by setup()
  clients = {},      -- project root -> client id
  ready = {},        -- client id -> functions waiting for `initialize` to finish
  pending = {},      -- executeCommand request id -> { client_id, command }
  progress = {},     -- "client:token" -> { title, message, percentage }
  announced = {},    -- { text, at } shown recently (for de-duplication)
  completion = nil,  -- { client_id, id } of the inline completion in flight
}

-- Neovim 0.11 made client functions methods (client:request); older versions take no self.
local METHOD_CALLS = vim.fn.has('nvim-0.11') == 1
local function call(client, name, ...)
  if METHOD_CALLS then
    return client[name](client, ...)
  end
  return client[name](...)
end

local function now_ms()
  return vim.loop.now()
end

local function notify(msg, level)
  vim.notify('[qcoder] ' .. msg, level or levels.INFO, { title = 'qcoder' })
end

local function short(command)
  return (command:gsub('^qcoder%.', ''))
end

local function trim(s)
  return (s:gsub('^%s+', ''):gsub('%s+$', ''))
end

-- Show `text` unless the same text (one containing the other) was shown within the window:
-- the server announces results with showMessage and the plugin shows the command's result,
-- in either order. A shown text hides one repeat only (the pair is then used up), so the
-- same result of a second request is shown again. `extra` (stop reason, changed files) is
-- shown even when `text` is not.
local function announce(text, level, extra)
  local t = now_ms()
  local fresh = {}
  for _, a in ipairs(state.announced) do
    if t - a.at <= ANNOUNCE_WINDOW_MS then
      fresh[#fresh + 1] = a
    end
  end
  state.announced = fresh
  local key = trim(text)
  local seen = false
  if key ~= '' then
    for i, a in ipairs(fresh) do
      if a.text:find(key, 1, true) or key:find(a.text, 1, true) then
        seen = true
        table.remove(fresh, i)
        break
      end
    end
    if not seen then
      fresh[#fresh + 1] = { text = key, at = t }
    end
  end
  local parts = {}
  if not seen and key ~= '' then
    parts[#parts + 1] = key
  end
  if extra and extra ~= '' then
    parts[#parts + 1] = extra
  end
  if #parts > 0 then
    notify(table.concat(parts, '\n'), level)
  end
end

---------------------------------------------------------------------------------------------
-- Options

local function is_list_of_strings(v, allow_empty)
  if type(v) ~= 'table' or (not allow_empty and #v == 0) then
    return false
  end
  for k, s in pairs(v) do
    if type(k) ~= 'number' or type(s) ~= 'string' or s == '' then
      return false
    end
  end
  return true
end

--- Validated options, or nil and a message saying what to change.
function M._validate(opts)
  if opts ~= nil and type(opts) ~= 'table' then
    return nil, 'setup() takes a table of options'
  end
  local c = vim.tbl_extend('force', {}, defaults, opts or {})
  for k in pairs(opts or {}) do
    if not OPTION_NAMES[k] then
      return nil, string.format('unknown option %q (see :help qcoder-setup)', k)
    end
  end
  if not is_list_of_strings(c.cmd) then
    return nil, "cmd must be a non-empty list of strings, e.g. {'qcoder', 'lsp'}"
  end
  if c.model ~= nil and (type(c.model) ~= 'string' or c.model == '') then
    return nil, 'model must be a non-empty string (GGUF path, script:FILE or URL)'
  end
  if c.remote ~= nil and (type(c.remote) ~= 'string' or not c.remote:match('^https?://.')) then
    return nil, 'remote must be an http:// or https:// URL'
  end
  if c.model ~= nil and c.remote ~= nil then
    return nil, 'set either model or remote, not both'
  end
  if c.mode ~= nil and not MODES[c.mode] then
    return nil, 'mode must be one of ask, auto-edit, full-auto, read-only'
  end
  if c.filetypes ~= nil and not is_list_of_strings(c.filetypes) then
    return nil, "filetypes must be a list of filetype names, e.g. {'c', 'lua'}"
  end
  if not is_list_of_strings(c.root_markers, true) then
    return nil, 'root_markers must be a list of file names'
  end
  if c.root_dir ~= nil and type(c.root_dir) ~= 'string' and type(c.root_dir) ~= 'function' then
    return nil, 'root_dir must be a path or a function(bufnr)'
  end
  if c.cmd_env ~= nil and type(c.cmd_env) ~= 'table' then
    return nil, 'cmd_env must be a table of environment variables'
  end
  if type(c.inline_completion) ~= 'boolean' then
    return nil, 'inline_completion must be true or false'
  end
  if c.on_attach ~= nil and type(c.on_attach) ~= 'function' then
    return nil, 'on_attach must be a function(client, bufnr)'
  end
  if c.model and c.model:sub(1, 1) == '~' then
    c.model = vim.fn.expand(c.model)
  end
  return c
end

--- The server command line: `cmd` plus the flags of docs/lsp-contract.md.
function M._server_cmd(c)
  local cmd = vim.deepcopy(c.cmd)
  if c.model then
    vim.list_extend(cmd, { '--model', c.model })
  end
  if c.remote then
    vim.list_extend(cmd, { '--remote', c.remote })
  end
  if c.mode then
    vim.list_extend(cmd, { '--mode', c.mode })
  end
  return cmd
end

--- initializationOptions {model, remote, mode} with only the options that are set.
function M._init_options(c)
  local o = {}
  for _, k in ipairs({ 'model', 'remote', 'mode' }) do
    if c[k] ~= nil then
      o[k] = c[k]
    end
  end
  return next(o) and o or nil
end

---------------------------------------------------------------------------------------------
-- Clients

local function get_line(bufnr, row)
  return vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

local function attachable(bufnr)
  local c = state.config
  if not c or not vim.api.nvim_buf_is_valid(bufnr) or not vim.api.nvim_buf_is_loaded(bufnr) then
    return false
  end
  if vim.bo[bufnr].buftype ~= '' or vim.api.nvim_buf_get_name(bufnr) == '' then
    return false
  end
  return c.filetypes == nil or vim.tbl_contains(c.filetypes, vim.bo[bufnr].filetype)
end

local function find_root(bufnr)
  local c = state.config
  if type(c.root_dir) == 'string' then
    return (vim.fn.fnamemodify(c.root_dir, ':p'):gsub('(.)/$', '%1'))
  elseif type(c.root_dir) == 'function' then
    local r = c.root_dir(bufnr)
    if type(r) == 'string' and r ~= '' then
      return r
    end
  end
  local cwd = vim.loop.cwd()
  local name = bufnr and vim.api.nvim_buf_get_name(bufnr) or ''
  if name == '' then
    return cwd
  end
  local start = vim.fn.fnamemodify(name, ':p:h')
  local dir = start
  while true do
    for _, m in ipairs(c.root_markers) do
      if vim.loop.fs_stat(dir .. '/' .. m) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ':h')
    if parent == dir then
      break
    end
    dir = parent
  end
  -- No marker: the working directory when the file is inside it, else the file's folder.
  if start == cwd or start:sub(1, #cwd + 1) == cwd .. '/' then
    return cwd
  end
  return start
end

local handlers = {}

handlers['window/showMessage'] = function(_, result)
  if type(result) == 'table' and type(result.message) == 'string' then
    announce(result.message, MESSAGE_LEVELS[result.type] or levels.INFO)
  end
  return vim.NIL
end

handlers['$/progress'] = function(err, result, ctx, config)
  if type(result) == 'table' and type(result.value) == 'table' then
    local key = tostring(ctx.client_id) .. ':' .. tostring(result.token)
    local v = result.value
    if v.kind == 'begin' then
      state.progress[key] = { title = v.title, message = v.message, percentage = v.percentage }
    elseif v.kind == 'report' and state.progress[key] then
      local p = state.progress[key]
      p.message = v.message or p.message
      p.percentage = v.percentage or p.percentage
    elseif v.kind == 'end' then
      state.progress[key] = nil
    end
    pcall(vim.cmd, 'redrawstatus')
  end
  local default = vim.lsp.handlers['$/progress']
  if default then
    return default(err, result, ctx, config)
  end
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.textDocument = caps.textDocument or {}
  -- Neovim < 0.12 does not announce LSP 3.18 inline completion; :QcoderComplete sends it.
  caps.textDocument.inlineCompletion = caps.textDocument.inlineCompletion or { dynamicRegistration = false }
  return caps
end

local commands -- client-side handlers for the server's code action commands (below)

local function on_attach(client, bufnr)
  local c = state.config
  if c.inline_completion and vim.lsp.inline_completion and vim.lsp.inline_completion.enable then
    local caps = client.server_capabilities or {}
    if caps.inlineCompletionProvider then
      local ok, err = pcall(vim.lsp.inline_completion.enable, true, { bufnr = bufnr })
      if not ok then
        notify('could not enable inline completion: ' .. tostring(err), levels.WARN)
      end
    end
  end
  if c.on_attach then
    c.on_attach(client, bufnr)
  end
end

local function client_config(root)
  local c = state.config
  return {
    name = CLIENT_NAME,
    cmd = M._server_cmd(c),
    cmd_env = c.cmd_env,
    root_dir = root,
    init_options = M._init_options(c),
    capabilities = capabilities(),
    offset_encoding = 'utf-16',
    handlers = handlers,
    commands = commands,
    on_attach = on_attach,
    on_init = function(client)
      local queue = state.ready[client.id]
      state.ready[client.id] = nil
      if queue then
        vim.schedule(function()
          for _, fn in ipairs(queue) do
            fn(client)
          end
        end)
      end
    end,
    on_exit = function(code, signal, client_id)
      vim.schedule(function()
        for root_dir, id in pairs(state.clients) do
          if id == client_id then
            state.clients[root_dir] = nil
          end
        end
        for id, p in pairs(state.pending) do
          if p.client_id == client_id then
            state.pending[id] = nil
          end
        end
        for key in pairs(state.progress) do
          if key:match('^' .. client_id .. ':') then
            state.progress[key] = nil
          end
        end
        state.ready[client_id] = nil
        if code ~= 0 or (signal and signal ~= 0) then
          notify(string.format('qcoder lsp exited (code %d, signal %d); see :LspInfo and the LSP log',
            code or -1, signal or 0), levels.ERROR)
        end
      end)
    end,
  }
end

local function live_client(id)
  local client = id and vim.lsp.get_client_by_id(id)
  if client and not call(client, 'is_stopped') then
    return client
  end
  return nil
end

-- Start (or reuse) the client for bufnr's project and attach bufnr; bufnr nil starts the
-- client of the working directory without attaching anything. Returns the client id.
local function start(bufnr)
  local root = find_root(bufnr)
  local id = state.clients[root]
  if live_client(id) then
    if bufnr and not vim.lsp.buf_is_attached(bufnr, id) then
      vim.lsp.buf_attach_client(bufnr, id)
    end
    return id
  end
  local config = client_config(root)
  if vim.fn.executable(config.cmd[1]) ~= 1 then
    notify(string.format("'%s' is not executable; set cmd = {'/path/to/qcoder', 'lsp'} in setup()",
      config.cmd[1]), levels.ERROR)
    return nil
  end
  local ok, res
  if vim.lsp.start and bufnr then
    ok, res = pcall(vim.lsp.start, config, { bufnr = bufnr })
  elseif vim.lsp.start and vim.fn.has('nvim-0.11') == 1 then
    ok, res = pcall(vim.lsp.start, config, { attach = false })
  else
    ok, res = pcall(vim.lsp.start_client, config)
    if ok and res and bufnr then
      vim.lsp.buf_attach_client(bufnr, res)
    end
  end
  if not ok or not res then
    notify('could not start ' .. table.concat(config.cmd, ' ') .. ': ' .. tostring(res), levels.ERROR)
    return nil
  end
  state.clients[root] = res
  return res
end

--- Attach buffer `bufnr` (0 or nil: current) to qcoder, starting the server if needed.
--- Returns the client id, or nil when the buffer is not a file qcoder handles.
function M.attach(bufnr)
  if not state.config then
    notify('call require("qcoder").setup() first', levels.ERROR)
    return nil
  end
  if bufnr == nil or bufnr == 0 then
    bufnr = vim.api.nvim_get_current_buf()
  end
  if not attachable(bufnr) then
    return nil
  end
  return start(bufnr)
end

-- Run fn(client) once the client has finished `initialize` (requests must not go earlier).
local function when_ready(client_id, fn)
  local client = live_client(client_id)
  if not client then
    return
  end
  if client.initialized then
    fn(client)
    return
  end
  state.ready[client_id] = state.ready[client_id] or {}
  table.insert(state.ready[client_id], fn)
end

---------------------------------------------------------------------------------------------
-- Commands

local function changed_files(list)
  local out = {}
  if type(list) ~= 'table' then
    return out
  end
  for _, f in ipairs(list) do
    local s = type(f) == 'table' and (f.uri or f.path) or f
    if type(s) == 'string' then
      if s:match('^file://') then
        s = vim.fn.fnamemodify(vim.uri_to_fname(s), ':~:.')
      end
      out[#out + 1] = s
    end
  end
  return out
end

local function show_result(command, err, result)
  local name = short(command)
  if err then
    if err.code == REQUEST_CANCELLED then
      announce(name .. ' cancelled', levels.WARN)
    else
      announce(name .. ' failed: ' .. tostring(err.message or err), levels.ERROR)
    end
    return
  end
  if type(result) ~= 'table' then
    announce(name .. ' done', levels.INFO)
    return
  end
  if type(result.text) == 'string' then
    announce(result.text, levels.INFO)
    return
  end
  local stop = result.stopReason
  local level = levels.INFO
  if stop == 'error' then
    level = levels.ERROR
  elseif type(stop) == 'string' and stop ~= 'end_turn' then
    level = levels.WARN
  end
  local extra = {}
  if type(stop) == 'string' and stop ~= 'end_turn' then
    extra[#extra + 1] = name .. ' stopped: ' .. stop
  end
  local files = changed_files(result.changedFiles)
  if #files > 0 then
    extra[#extra + 1] = 'changed: ' .. table.concat(files, ', ')
  end
  local summary = type(result.summary) == 'string' and result.summary or (name .. ' done')
  announce(summary, level, table.concat(extra, '; '))
end

local function execute(client_id, command, arg, bufnr)
  when_ready(client_id, function(client)
    local id
    local params = { command = command, arguments = { arg } }
    local ok, rid = call(client, 'request', 'workspace/executeCommand', params, function(err, result)
      local was_pending = state.pending[id] ~= nil
      state.pending[id] = nil
      if not was_pending and err and err.code == REQUEST_CANCELLED then
        return -- M.cancel() already said so
      end
      show_result(command, err, result)
    end, bufnr)
    if not ok or not rid then
      notify('could not send ' .. command .. ': the server is not running', levels.ERROR)
      return
    end
    id = rid
    state.pending[id] = { client_id = client.id, command = command }
    notify(short(command) .. '… (:QcoderCancel to stop)', levels.INFO)
  end)
end

-- The LSP range of a command's target: the visual selection (characterwise when the command
-- was run on a `v` selection, whole lines otherwise), a line range, or the cursor line.
local function target_range(bufnr, opts)
  opts = opts or {}
  local getter = function(row)
    return get_line(bufnr, row)
  end
  if not opts.range or opts.range == 0 then
    local row = vim.api.nvim_win_get_cursor(0)[1] - 1
    return position.line_range(getter, row, row)
  end
  local first, last = opts.line1 - 1, opts.line2 - 1
  if opts.range == 2 and vim.fn.visualmode() == 'v' then
    local s = vim.api.nvim_buf_get_mark(bufnr, '<')
    local e = vim.api.nvim_buf_get_mark(bufnr, '>')
    if s[1] - 1 == first and e[1] - 1 == last then
      local eline = getter(last)
      local ecol = math.min(e[2], #eline)
      if vim.o.selection ~= 'exclusive' then
        ecol = ecol + position.char_len(eline, ecol)
      end
      return position.char_range(getter, first, math.min(s[2], #getter(first)), last, ecol)
    end
  end
  return position.line_range(getter, first, last)
end

local function diagnostics_in(bufnr, range)
  local out = {}
  local getter = function(row)
    return get_line(bufnr, row)
  end
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    local last = d.end_lnum or d.lnum
    if d.lnum <= range['end'].line and last >= range.start.line then
      out[#out + 1] = position.diagnostic_to_lsp(d, getter)
    end
  end
  return out
end

local function file_target(need_what)
  local bufnr = vim.api.nvim_get_current_buf()
  local id = M.attach(bufnr)
  if not id then
    if state.config then
      notify(need_what .. ' needs a file buffer' ..
        (state.config.filetypes and ' of a filetype in setup({filetypes})' or ''), levels.WARN)
    end
    return nil
  end
  return bufnr, id
end

--- :QcoderFix [hint] — fix the cursor line or the range, with the diagnostics there; an
--- optional hint (opts.args) is sent as the contract's `instruction`.
function M.fix(opts)
  local bufnr, id = file_target('QcoderFix')
  if not bufnr then
    return
  end
  local range = target_range(bufnr, opts)
  local arg = {
    uri = vim.uri_from_bufnr(bufnr),
    range = range,
    diagnostics = diagnostics_in(bufnr, range),
  }
  if opts and type(opts.args) == 'string' and trim(opts.args) ~= '' then
    arg.instruction = trim(opts.args)
  end
  execute(id, 'qcoder.fix', arg, bufnr)
end

--- :QcoderExplain — explain the cursor line or the range.
function M.explain(opts)
  local bufnr, id = file_target('QcoderExplain')
  if not bufnr then
    return
  end
  execute(id, 'qcoder.explain', { uri = vim.uri_from_bufnr(bufnr), range = target_range(bufnr, opts) }, bufnr)
end

--- :QcoderRefactor {instruction} — rewrite the cursor line or the range as instructed.
function M.refactor(instruction, opts)
  local bufnr, id = file_target('QcoderRefactor')
  if not bufnr then
    return
  end
  local range = target_range(bufnr, opts)
  local function go(text)
    if type(text) ~= 'string' or trim(text) == '' then
      return
    end
    execute(id, 'qcoder.refactor', { uri = vim.uri_from_bufnr(bufnr), range = range, instruction = text }, bufnr)
  end
  if type(instruction) == 'string' and trim(instruction) ~= '' then
    go(instruction)
  else
    vim.ui.input({ prompt = 'qcoder refactor: ' }, go)
  end
end

-- The client of the current file, or of the working directory when there is no file.
local function any_target()
  if not state.config then
    notify('call require("qcoder").setup() first', levels.ERROR)
    return nil
  end
  local bufnr = vim.api.nvim_get_current_buf()
  if attachable(bufnr) then
    return bufnr, start(bufnr)
  end
  return nil, start(nil)
end

--- :QcoderAsk {prompt} — ask about the code; a range (or visual selection) is sent along.
function M.ask(prompt, opts)
  if type(prompt) ~= 'string' or trim(prompt) == '' then
    notify('QcoderAsk needs a question', levels.WARN)
    return
  end
  local bufnr, id = any_target()
  if not id then
    return
  end
  local arg = { prompt = prompt }
  if bufnr then
    arg.uri = vim.uri_from_bufnr(bufnr)
    if opts and opts.range and opts.range > 0 then
      arg.range = target_range(bufnr, opts)
    end
  end
  execute(id, 'qcoder.ask', arg, bufnr)
end

--- :QcoderRun {prompt} — run the agent on the whole workspace.
function M.run(prompt)
  if type(prompt) ~= 'string' or trim(prompt) == '' then
    notify('QcoderRun needs a task', levels.WARN)
    return
  end
  local bufnr, id = any_target()
  if not id then
    return
  end
  execute(id, 'qcoder.run', { prompt = prompt }, bufnr)
end

--- :QcoderCancel — cancel every qcoder request in flight ($/cancelRequest).
function M.cancel()
  local n = 0
  -- Neovim 0.7 drops the handler of a cancelled request (its RequestCancelled answer never
  -- reaches us), so the request is forgotten and reported here.
  for id, p in pairs(state.pending) do
    local client = live_client(p.client_id)
    if client then
      call(client, 'cancel_request', id)
      n = n + 1
    end
    state.pending[id] = nil
    announce(short(p.command) .. ' cancelled', levels.WARN)
  end
  if state.completion then
    local client = live_client(state.completion.client_id)
    if client then
      call(client, 'cancel_request', state.completion.id)
      n = n + 1
    end
    state.completion = nil
  end
  if n == 0 then
    notify('nothing to cancel')
  end
  return n
end

-- The first usable item of an InlineCompletionItem[] | InlineCompletionList | null.
local function first_item(result)
  if type(result) ~= 'table' then
    return nil
  end
  local items = result.items or result
  if type(items) ~= 'table' then
    return nil
  end
  for _, item in ipairs(items) do
    local text = item.insertText
    if type(text) == 'table' then
      text = text.value
    end
    if type(text) == 'string' and text ~= '' then
      return item, text
    end
  end
  return nil
end

local function insert_completion(bufnr, win, item, text, pos)
  if type(item.insertText) == 'table' and vim.lsp.util.parse_snippet then
    local ok, plain = pcall(vim.lsp.util.parse_snippet, text)
    if ok and type(plain) == 'string' then
      text = plain
    end
  end
  local range = type(item.range) == 'table' and item.range or { start = pos, ['end'] = pos }
  local srow = range.start.line
  local scol = position.byte_col(get_line(bufnr, srow), range.start.character)
  vim.lsp.util.apply_text_edits({ { range = range, newText = text } }, bufnr, 'utf-16')
  local lines = vim.split(text, '\n', { plain = true })
  local row = srow + #lines - 1
  local col = (#lines == 1 and scol or 0) + #lines[#lines]
  if vim.api.nvim_win_is_valid(win) and vim.api.nvim_win_get_buf(win) == bufnr then
    pcall(vim.api.nvim_win_set_cursor, win, { row + 1, col })
  end
end

--- :QcoderComplete — ask for an inline completion at the cursor and insert the first item.
--- For Neovim < 0.12; on 0.12 the native vim.lsp.inline_completion is enabled as well.
function M.complete()
  local bufnr, id = file_target('QcoderComplete')
  if not bufnr then
    return
  end
  when_ready(id, function(client)
    local win = vim.api.nvim_get_current_win()
    local cursor = vim.api.nvim_win_get_cursor(win)
    local row = cursor[1] - 1
    local pos = { line = row, character = position.utf16_col(get_line(bufnr, row), cursor[2]) }
    local tick = vim.api.nvim_buf_get_changedtick(bufnr)
    if state.completion then
      local old = live_client(state.completion.client_id)
      if old then
        call(old, 'cancel_request', state.completion.id)
      end
    end
    local params = {
      textDocument = { uri = vim.uri_from_bufnr(bufnr) },
      position = pos,
      context = { triggerKind = 1 },  -- Invoked
    }
    local rid
    local ok, r = call(client, 'request', 'textDocument/inlineCompletion', params, function(err, result)
      if state.completion and state.completion.id == rid then
        state.completion = nil
      end
      if err then
        if err.code ~= REQUEST_CANCELLED then
          notify('completion failed: ' .. tostring(err.message or err), levels.ERROR)
        end
        return
      end
      local item, text = first_item(result)
      if not item then
        notify('no completion here')
        return
      end
      -- A stale answer (the buffer or the cursor moved meanwhile) is dropped.
      local moved = not vim.api.nvim_win_is_valid(win)
        or vim.api.nvim_win_get_buf(win) ~= bufnr
        or not vim.deep_equal(vim.api.nvim_win_get_cursor(win), cursor)
      if moved or vim.api.nvim_buf_get_changedtick(bufnr) ~= tick then
        return
      end
      insert_completion(bufnr, win, item, text, pos)
    end, bufnr)
    if ok and r then
      rid = r
      state.completion = { client_id = client.id, id = rid }
    else
      notify('could not send the completion request: the server is not running', levels.ERROR)
    end
  end)
end

--- A short status for the statusline: the current progress, a running command, or ''.
function M.status()
  for _, p in pairs(state.progress) do
    local title = type(p.title) == 'string' and p.title or 'working'
    local s = title:match('^qcoder') and title or ('qcoder: ' .. title)
    if type(p.message) == 'string' and p.message ~= '' then
      s = s .. ' — ' .. p.message
    end
    if type(p.percentage) == 'number' then
      s = s .. string.format(' (%d%%)', p.percentage)
    end
    return s
  end
  for _, p in pairs(state.pending) do
    return 'qcoder: ' .. short(p.command) .. '…'
  end
  return ''
end

--- Ids of the running qcoder clients.
function M.clients()
  local out = {}
  for _, id in pairs(state.clients) do
    if live_client(id) then
      out[#out + 1] = id
    end
  end
  return out
end

--- Stop every qcoder client.
function M.stop()
  for _, id in ipairs(M.clients()) do
    vim.lsp.stop_client(id)
  end
  state.clients = {}
  state.pending = {}
  state.progress = {}
  state.ready = {}
  state.completion = nil
end

-- Code actions from the server carry these commands; Neovim runs client-side handlers
-- instead of sending them, so they go through `execute` like the :Qcoder* commands.
commands = {
  ['qcoder.fix'] = function(command, ctx)
    execute(ctx.client_id, 'qcoder.fix', (command.arguments or {})[1], ctx.bufnr)
  end,
  ['qcoder.explain'] = function(command, ctx)
    execute(ctx.client_id, 'qcoder.explain', (command.arguments or {})[1], ctx.bufnr)
  end,
  ['qcoder.refactor'] = function(command, ctx)
    local arg = vim.deepcopy((command.arguments or {})[1] or {})
    if type(arg.instruction) == 'string' and trim(arg.instruction) ~= '' then
      execute(ctx.client_id, 'qcoder.refactor', arg, ctx.bufnr)
      return
    end
    vim.ui.input({ prompt = 'qcoder refactor: ' }, function(text)
      if type(text) == 'string' and trim(text) ~= '' then
        arg.instruction = text
        execute(ctx.client_id, 'qcoder.refactor', arg, ctx.bufnr)
      end
    end)
  end,
}

local function define_commands()
  local cmd = vim.api.nvim_create_user_command
  cmd('QcoderAsk', function(o)
    M.ask(o.args, o)
  end, { nargs = '+', range = true, desc = 'qcoder: ask about the code (range is sent along)' })
  cmd('QcoderFix', function(o)
    M.fix(o)
  end, { nargs = '*', range = true, desc = 'qcoder: fix the line or range, with its diagnostics' })
  cmd('QcoderRun', function(o)
    M.run(o.args)
  end, { nargs = '+', desc = 'qcoder: run the agent on the workspace' })
  cmd('QcoderExplain', function(o)
    M.explain(o)
  end, { range = true, desc = 'qcoder: explain the line or range' })
  cmd('QcoderRefactor', function(o)
    M.refactor(o.args, o)
  end, { nargs = '*', range = true, desc = 'qcoder: refactor the line or range as instructed' })
  cmd('QcoderComplete', function()
    M.complete()
  end, { desc = 'qcoder: insert an inline completion at the cursor' })
  cmd('QcoderCancel', function()
    M.cancel()
  end, { desc = 'qcoder: cancel the running requests' })
end

--- Configure qcoder, define the :Qcoder* commands and attach file buffers.
--- Returns true, or false (after a notification saying what to fix) on bad options.
function M.setup(opts)
  local c, err = M._validate(opts)
  if not c then
    notify('setup: ' .. err, levels.ERROR)
    return false
  end
  if state.config then
    M.stop()
  end
  state.config = c
  define_commands()
  local group = vim.api.nvim_create_augroup('qcoder', { clear = true })
  local callback = function(args)
    M.attach(args.buf)
  end
  if c.filetypes then
    vim.api.nvim_create_autocmd('FileType', { group = group, pattern = c.filetypes, callback = callback })
  else
    vim.api.nvim_create_autocmd({ 'FileType', 'BufEnter' }, { group = group, pattern = '*', callback = callback })
  end
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if attachable(bufnr) then
      M.attach(bufnr)
    end
  end
  return true
end

return M
