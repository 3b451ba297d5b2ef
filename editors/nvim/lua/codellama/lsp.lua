--- Starting the codellama-lsp server and talking to it.
local config = require('codellama.config')

local M = {}

--- Name of the client, as used by `vim.lsp.config()` / `vim.lsp.enable()`.
M.name = 'codellama'

---@class codellama.ClientState
---@field loading table<string|integer, true> Work-done progress tokens that have begun but not ended.
---@field enabled boolean? Last known value of the server's `enabled` flag.
---@field failed boolean? Whether the server's last model load failed (its `codellama.status` state).
---@field too_slow string? Why completions as you type stay empty (the server's `too_slow`), while they do.

---@type table<integer, codellama.ClientState>
local client_state = {}

--- What the plugin itself last gave |vim.lsp.config()| as `cmd` and `filetypes`: a resolved value that
--- differs from it is the user's own (an `lsp/codellama.lua` on 'runtimepath', a vim.lsp.config() call).
---@type { cmd?: string[], filetypes?: string[] }
local registered = {}

--- What :CodellamaToggle last turned completions to, until the `enabled` setting is given again. The server's
--- own state goes with its process: a server started later (after a crash, a restart) is given this one.
---@type boolean?
local toggled = nil

--- The `cmd` the server is started with, once setup() has registered the config.
---@type string[]|function|nil
local effective_cmd = nil

--- The filetypes the server is started for, once setup() has registered the config.
---@type string[]?
local effective_filetypes = nil

--- The server's config as |vim.lsp.config| resolves it: `lsp/codellama.lua` files, then vim.lsp.config() calls.
---@return vim.lsp.Config
function M.resolved_config()
  -- Resolving a name that nothing has configured yet logs a warning: configure it (with nothing) first.
  vim.lsp.config(M.name, {})
  return vim.lsp.config[M.name]
end

--- The command that starts the server: the user's own when they configured it and gave setup() no `cmd`.
---@return string[]|function
function M.cmd()
  return M.resolved_config().cmd or config.options.cmd
end

--- How the last server process ended (for `:checkhealth codellama`), or nil while none has.
---@type { code: integer, signal: integer, program: string }?
M.last_exit = nil

---@param client_id integer
---@return codellama.ClientState
local function state_of(client_id)
  client_state[client_id] = client_state[client_id] or { loading = {} }
  return client_state[client_id]
end

--- The codellama client attached to {bufnr} (default: current buffer), if any.
---@param bufnr? integer
---@return vim.lsp.Client?
function M.get_client(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  return vim.lsp.get_clients({ bufnr = bufnr, name = M.name })[1]
end

--- The buffer without a name last let attach: its client attaches on the next tick, after the other buffers
--- of a |:doautoall| (vim.lsp.enable(), a restart) have been looked at.
---@type integer?
local nameless_claim = nil

--- Whether another buffer without a name is attached to a codellama client already (or about to be). Neovim
--- gives every such buffer the same URI (`file://`), so the server would keep one text for all of them: a
--- second one opened replaces the first's text there, and the first's edits are then applied to the second's.
---@param bufnr integer
---@return boolean
local function other_nameless_attached(bufnr)
  local claim = nameless_claim
  if claim and claim ~= bufnr and vim.api.nvim_buf_is_loaded(claim) and vim.api.nvim_buf_get_name(claim) == '' then
    return true
  end
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name, _uninitialized = true })) do
    for other in pairs(client.attached_buffers) do
      if other ~= bufnr and vim.api.nvim_buf_is_valid(other) and vim.api.nvim_buf_get_name(other) == '' then
        return true
      end
    end
  end
  return false
end

--- The `vim.lsp.Config` for the server, built from the plugin options.
---@return vim.lsp.Config
function M.client_config()
  local opts = config.options
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  -- Positions are exchanged in UTF-16 code units, the LSP default every server supports.
  capabilities.general = capabilities.general or {}
  capabilities.general.positionEncodings = { 'utf-16' }
  capabilities.textDocument.inlineCompletion = { dynamicRegistration = false }

  ---@type vim.lsp.Config
  return {
    cmd = opts.cmd,
    filetypes = opts.filetypes,
    -- No root: one server (one model in memory) serves every buffer of the session. on_dir(nil) attaches
    -- the buffer with none; not calling it leaves a second buffer without a name alone (see above).
    root_markers = nil,
    root_dir = function(bufnr, on_dir)
      if vim.api.nvim_buf_get_name(bufnr) == '' then
        if other_nameless_attached(bufnr) then
          return
        end
        nameless_claim = bufnr
      end
      on_dir(nil)
    end,
    capabilities = capabilities,
    on_exit = function(code, signal)
      local cmd = effective_cmd or opts.cmd
      M.last_exit = { code = code, signal = signal, program = type(cmd) == 'table' and cmd[1] or tostring(cmd) }
      vim.schedule(function()
        vim.cmd.redrawstatus({ bang = true }) -- "stopped"
      end)
    end,
    -- The settings reach the server once: it asks for them (`workspace/configuration`) when it has
    -- started. Neither `init_options` nor `settings` (which Neovim also pushes with
    -- `workspace/didChangeConfiguration`) carry them, or the server would check them twice.
    handlers = {
      -- The server says when completions as you type start or stop running out of their time budget.
      ['$/codellama/tooSlow'] = function(_, params, ctx)
        if type(params) == 'table' then
          state_of(ctx.client_id).too_slow = type(params.too_slow) == 'string' and params.too_slow or nil
          vim.cmd.redrawstatus({ bang = true })
        end
      end,
      ['workspace/configuration'] = function(_, params)
        return vim.tbl_map(function(item)
          if item.section ~= 'codellama' then
            return vim.NIL
          end
          local settings = config.server_settings()
          return toggled == nil and settings or vim.tbl_extend('force', settings, { enabled = toggled })
        end, params.items)
      end,
    },
  }
end

--- Whether the server command can be run; says how to fix it (once, unless {every_time}) when it cannot.
---@param every_time? boolean say it again (asked for by the user: a restart)
---@return boolean
function M.check_command(every_time)
  local cmd = M.cmd()
  if type(cmd) ~= 'table' then
    return true -- a function that connects to the server some other way
  end
  local program = cmd[1]
  if vim.fn.executable(program) == 1 then
    return true
  end
  local notify = every_time and vim.notify or vim.notify_once
  notify(
    ('codellama: `%s` was not found. Install the server (pip install -e . in a checkout of codellama-lsp) or give its full path, '
      .. "e.g. require('codellama').setup({ cmd = { '/path/to/.venv/bin/codellama-lsp', 'serve' } }); "
      .. 'see :checkhealth codellama'):format(program),
    vim.log.levels.WARN
  )
  return false
end

--- Register the config with `vim.lsp.config()` and enable it for the configured filetypes.
---
--- A `cmd` or `filetypes` the user configured for the server themselves (Neovim 0.11's `lsp/codellama.lua`,
--- a vim.lsp.config() call) is kept unless setup() was given one: the plugin's defaults must not replace it.
---@param every_time? boolean say again when the command cannot be run (see check_command())
function M.enable(every_time)
  local cfg = M.client_config()
  local theirs = M.resolved_config()
  for _, key in ipairs({ 'cmd', 'filetypes' }) do
    if not config.given[key] and theirs[key] ~= nil and not vim.deep_equal(theirs[key], registered[key]) then
      cfg[key] = nil
    else
      registered[key] = cfg[key]
    end
  end
  vim.lsp.config(M.name, cfg)
  effective_cmd = M.cmd()
  effective_filetypes = M.resolved_config().filetypes
  vim.lsp.enable(M.name, M.check_command(every_time))
end

--- Why there is no server for a buffer, and what to do: after a server has stopped, that it did and how to
--- start it again.
---@return string
function M.no_client_message()
  local exit = M.last_exit
  if exit and #vim.lsp.get_clients({ name = M.name, _uninitialized = true }) == 0 then
    return ('codellama: the server stopped (exit code %d, signal %d); :CodellamaRestart starts it again, '
      .. ':checkhealth codellama says why it stopped'):format(exit.code, exit.signal)
  end
  return 'codellama: no codellama-lsp client in this buffer'
end

--- Stop the running servers and start one again for every buffer of the configured filetypes, as opening
--- them would; also after a server has crashed. The new one starts only once the old ones have exited, so that
--- two copies of the model are never in memory at once.
function M.restart()
  local old = vim.lsp.get_clients({ name = M.name, _uninitialized = true })
  for _, client in ipairs(old) do
    client:stop()
  end
  local waited_ms, step_ms = 0, 50
  local timer = assert(vim.uv.new_timer())
  timer:start(0, step_ms, vim.schedule_wrap(function()
    if timer:is_closing() then
      return
    end
    local running = vim.tbl_filter(function(client)
      return vim.lsp.get_client_by_id(client.id) ~= nil
    end, old)
    if #running > 0 then
      waited_ms = waited_ms + step_ms
      if waited_ms >= 5000 then -- a server that does not shut down when asked
        for _, client in ipairs(running) do
          client:stop(true)
        end
      end
      return
    end
    timer:close()
    M.enable(true) -- vim.lsp.enable() starts a client for each buffer it applies to
  end))
end

--- Send the settings to running servers (`workspace/didChangeConfiguration`).
---
--- The server merges what it gets into the settings it has, so a setting in {previous} that is no longer set
--- goes as null: its default there (the flag in `cmd`, if any), not the value it had.
---@param previous? table<string, any> the settings the servers were given before
function M.push_settings(previous)
  local settings = config.server_settings()
  for key in pairs(previous or {}) do
    if settings[key] == nil then
      settings[key] = vim.NIL
    end
  end
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    client:notify('workspace/didChangeConfiguration', { settings = { codellama = settings } })
  end
end

--- The `enabled` setting was given again (after push_settings()): it, not the last toggle, rules.
---
--- A server applies `enabled` only when it differs from its previous setting, so a value that undoes
--- :CodellamaToggle would be lost: bring each running server's on/off state in line with it.
function M.apply_enabled()
  toggled = nil
  local enabled = config.options.settings.enabled ~= false
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    client:request('workspace/executeCommand', { command = 'codellama.status', arguments = {} }, function(err, status)
      if err or type(status) ~= 'table' or status.enabled == enabled then
        return
      end
      client:request('workspace/executeCommand', { command = 'codellama.toggle', arguments = {} }, function(_, result)
        if type(result) == 'table' and type(result.enabled) == 'boolean' then
          state_of(client.id).enabled = result.enabled
        end
      end)
    end)
  end
end

--- Merge {settings} into the plugin's and send them to running servers.
---@param settings table<string, any> camelCase keys of the `codellama` section
function M.update_settings(settings)
  config.options.settings = vim.tbl_extend('force', config.options.settings, settings)
  M.push_settings()
  if settings.enabled ~= nil then
    M.apply_enabled()
  end
end

--- Run a server command (`workspace/executeCommand`).
---@param command string e.g. `codellama.status`
---@param arguments? any[]
---@param on_result? fun(err: lsp.ResponseError?, result: any)
---@param bufnr? integer
---@return boolean sent false when no codellama client is attached to the buffer
function M.exec(command, arguments, on_result, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = M.get_client(bufnr)
  if not client then
    vim.notify(M.no_client_message(), vim.log.levels.WARN)
    return false
  end
  client:exec_cmd({ title = command, command = command, arguments = arguments }, { bufnr = bufnr }, function(err, result)
    if command == 'codellama.toggle' and not err then
      local enabled = result
      if type(result) == 'table' then
        enabled = result.enabled
      end
      if type(enabled) == 'boolean' then
        state_of(client.id).enabled = enabled
        toggled = enabled
      end
    elseif command == 'codellama.status' and not err then
      M.note_status(client.id, result)
    end
    if on_result then
      on_result(err, result)
    end
  end)
  return true
end

--- Keep what a `codellama.status` result says about the client's server.
---@param client_id integer
---@param result any
function M.note_status(client_id, result)
  if type(result) ~= 'table' then
    return
  end
  local st = state_of(client_id)
  if type(result.enabled) == 'boolean' then
    st.enabled = result.enabled
  end
  if type(result.state) == 'string' then
    -- A model that loaded but cannot fill in the middle (Code Llama - Python) will never suggest anything.
    st.failed = result.state == 'failed' or result.infilling == false
    st.too_slow = type(result.too_slow) == 'string' and result.too_slow or nil
  end
end

--- Whether {bufnr} would have a server but the last one stopped on its own (a crash, a signal) and none runs.
---@param bufnr integer
---@return boolean
local function stopped_for(bufnr)
  local exit = M.last_exit
  if not exit or (exit.code == 0 and exit.signal == 0) then
    return false -- none has stopped, or one was stopped on purpose
  end
  local filetypes = effective_filetypes or config.options.filetypes
  return vim.tbl_contains(filetypes, vim.bo[bufnr].filetype) and #vim.lsp.get_clients({ name = M.name }) == 0
end

--- Short state for statuslines: `""` (no server), `"stopped"` (the server stopped on its own), `"loading"`,
--- `"failed"`, `"off"`, `"slow"` (completions as you type keep running out of their time budget) or `"ready"`.
---@param bufnr? integer
---@return string
function M.status_text(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = M.get_client(bufnr)
  if not client then
    return stopped_for(bufnr) and 'stopped' or ''
  end
  local st = state_of(client.id)
  if not client.initialized or next(st.loading) ~= nil then
    return 'loading'
  end
  if st.failed then
    return 'failed'
  end
  local enabled = st.enabled
  if enabled == nil then
    enabled = toggled
  end
  if enabled == nil then
    enabled = config.options.settings.enabled ~= false
  end
  if not enabled then
    return 'off'
  end
  return st.too_slow and 'slow' or 'ready'
end

--- Track `$/progress` (model loading) for `status_text()`.
---@param group integer augroup
---@param on_end? fun(client: vim.lsp.Client) called when a progress of the server ends
function M.track_progress(group, on_end)
  vim.api.nvim_create_autocmd('LspProgress', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      -- The kind from the params, not args.match (nor a pattern): Neovim 0.11 expands that like a file
      -- name, e.g. to /cwd/end.
      local kind = args.data.params.value.kind
      if not client or client.name ~= M.name or (kind ~= 'begin' and kind ~= 'end') then
        return
      end
      local token = args.data.params.token
      state_of(client.id).loading[token] = kind == 'begin' or nil
      vim.cmd.redrawstatus({ bang = true })
      if kind == 'end' then
        -- A load ends the same way whether the model loaded or not: the server's status says which.
        client:request('workspace/executeCommand', { command = 'codellama.status', arguments = {} }, function(err, result)
          if not err then
            M.note_status(client.id, result)
            vim.cmd.redrawstatus({ bang = true })
          end
        end)
        if on_end then
          on_end(client)
        end
      end
    end,
  })
end

return M
