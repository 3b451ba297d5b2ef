--- `:checkhealth codellama`: is the server there and runnable, and what is its model doing?
local config = require('codellama.config')
local lsp = require('codellama.lsp')

local health = vim.health

local M = {}

--- The command that prints the server's usage: `cmd` up to `serve`, then `--help`.
---@param cmd string[]
---@return string[]
local function help_command(cmd)
  local help = {}
  for _, arg in ipairs(cmd) do
    help[#help + 1] = arg
    if arg == 'serve' then
      break
    end
  end
  help[#help + 1] = '--help'
  return help
end

local function check_server()
  local cmd = lsp.cmd()
  if type(cmd) ~= 'table' then
    health.info('`cmd` is a function (configured with vim.lsp.config()): not checked')
    return
  end
  local program = vim.fn.exepath(cmd[1])
  if program == '' then
    health.error(('`%s` was not found'):format(cmd[1]), {
      'Install the server: pip install -e . in a checkout of codellama-lsp (e.g. in a virtual environment)',
      "Or give its full path: require('codellama').setup({ cmd = { '/path/to/.venv/bin/codellama-lsp', 'serve' } })",
    })
    return
  end
  health.ok(('server: %s'):format(program))
  local run = vim.system(help_command(cmd), { text = true }):wait(30000)
  if run.code == 0 then
    health.ok(('`%s` runs'):format(table.concat(help_command(cmd), ' ')))
  else
    health.error(('`%s` failed (exit %s): %s'):format(table.concat(help_command(cmd), ' '), tostring(run.code),
      vim.trim(run.stderr or '')))
  end
end

--- The last line {program} wrote to stderr, from the LSP log (Neovim logs a server's stderr there).
---@param program string
---@return string?
local function last_stderr_line(program)
  local ok, lines = pcall(vim.fn.readfile, vim.lsp.log.get_filename())
  if not ok then
    return nil
  end
  local marker = vim.inspect(program) .. '\t"stderr"\t'
  for i = #lines, 1, -1 do
    local at = lines[i]:find(marker, 1, true)
    -- The chunk as vim.inspect() wrote it: quoted, newlines as \n; the last one may be just "\n".
    local chunk = at and vim.trim((lines[i]:sub(at + #marker + 1, -2):gsub('\\n', '\n'):gsub('\\(.)', '%1')))
    if chunk and chunk ~= '' then
      return chunk:match('[^\n]*$')
    end
  end
end

local function check_client()
  local client = vim.lsp.get_clients({ name = lsp.name })[1]
  local exit = lsp.last_exit
  if not client and exit and (exit.code ~= 0 or exit.signal ~= 0) then
    health.error(('the server exited with code %d (signal %d): %s'):format(exit.code, exit.signal,
      last_stderr_line(exit.program) or 'it wrote nothing to stderr'), {
      'check the flags in `cmd` and the `settings`; the server\'s output is in the LSP log: '
        .. vim.lsp.log.get_filename(),
      'then :CodellamaRestart',
    })
    return
  end
  if not client then
    health.info(('not running: it starts with a buffer of a configured filetype (%s)'):format(
      table.concat(lsp.resolved_config().filetypes or config.options.filetypes, ', ')))
    return
  end
  local response = client:request_sync('workspace/executeCommand', { command = 'codellama.status', arguments = {} },
    10000)
  local status = response and response.result
  if type(status) ~= 'table' then
    health.warn('the server did not answer codellama.status: ' .. vim.inspect(response and response.err))
    return
  end
  local model = ('model: %s, state: %s, device: %s'):format(tostring(status.model), tostring(status.state),
    tostring(status.device ~= vim.NIL and status.device or 'none yet'))
  if status.state == 'failed' then
    health.error(model, { 'load error: ' .. tostring(status.error), 'fix the model setting, then :CodellamaReload' })
  elseif status.infilling == false then
    -- Loaded, but it can never suggest anything (Code Llama - Python): not healthy, as the statusline says.
    local why = status.error ~= vim.NIL and status.error or 'it cannot fill in the middle'
    health.error(('%s: %s'):format(model, tostring(why)),
      { 'choose a base or Instruct model in the model setting, then :CodellamaReload' })
  elseif status.state == 'ready' then
    health.ok(model)
  else
    health.info(model)
  end
  health.info('completions ' .. (status.enabled and 'enabled' or 'disabled (:CodellamaToggle)'))
  if type(status.too_slow) == 'string' then
    -- The server's warning, shown once as a message: completions as you type keep ending empty.
    health.warn('completions as you type are too slow: ' .. status.too_slow:gsub('^codellama: ', ''))
  end
end

function M.check()
  health.start('codellama: server')
  check_server()
  health.start('codellama: model')
  check_client()
end

return M
