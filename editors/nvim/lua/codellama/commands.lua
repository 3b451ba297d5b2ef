--- User commands: :CodellamaStatus, :CodellamaToggle, :CodellamaReload, :CodellamaRestart, :CodellamaDocstring.
local lsp = require('codellama.lsp')

local M = {}

--- Last result of `codellama.status` (nil until the first successful call).
---@type table?
M.last_status = nil

---@param what string
---@param err lsp.ResponseError
local function report_error(what, err)
  vim.notify(('codellama: %s failed: %s'):format(what, err.message or vim.inspect(err)), vim.log.levels.ERROR)
end

--- Fetch the server status and pass it to {on_status} (default: print it).
---@param on_status? fun(status: table)
function M.status(on_status)
  lsp.exec('codellama.status', nil, function(err, result)
    if err then
      return report_error('codellama.status', err)
    end
    M.last_status = result
    if on_status then
      on_status(result)
    else
      vim.api.nvim_echo({ { 'codellama status: ' .. vim.inspect(result) } }, true, {})
    end
  end)
end

--- Enable/disable completions on the server.
function M.toggle()
  lsp.exec('codellama.toggle', nil, function(err, result)
    if err then
      return report_error('codellama.toggle', err)
    end
    local enabled = result
    if type(result) == 'table' then
      enabled = result.enabled
    end
    vim.notify('codellama: completions ' .. (enabled and 'enabled' or 'disabled'))
    require('codellama.suggestion').dismiss()
  end)
end

--- Reload the model (progress is reported through |LspProgress|).
function M.reload()
  lsp.exec('codellama.reloadModel', nil, function(err)
    if err then
      return report_error('codellama.reloadModel', err)
    end
    vim.notify('codellama: model reloaded')
  end)
end

--- Generate a docstring for the function/class at the cursor; the server edits
--- the buffer through `workspace/applyEdit`.
function M.docstring()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = lsp.get_client(bufnr)
  if not client then
    vim.notify(lsp.no_client_message(), vim.log.levels.WARN)
    return
  end
  local position = vim.lsp.util.make_position_params(0, client.offset_encoding).position
  lsp.exec('codellama.generateDocstring', { vim.uri_from_bufnr(bufnr), position }, function(err, result)
    if err then
      report_error('codellama.generateDocstring', err)
    elseif type(result) == 'table' and result.applied == false then
      vim.notify(('codellama: no docstring written (%s)'):format(result.reason or 'no reason given'), vim.log.levels.WARN)
    end
  end, bufnr)
end

function M.create()
  local command = vim.api.nvim_create_user_command
  command('CodellamaStatus', function()
    M.status()
  end, { desc = 'Show the codellama-lsp server status' })
  command('CodellamaToggle', M.toggle, { desc = 'Enable/disable codellama completions' })
  command('CodellamaReload', M.reload, { desc = 'Reload the codellama model' })
  command('CodellamaRestart', lsp.restart, { desc = 'Restart the codellama-lsp server (also after it stopped)' })
  command('CodellamaDocstring', M.docstring, { desc = 'Generate a docstring at the cursor' })
end

return M
