--- Options of the codellama.nvim plugin: defaults, merging and validation.
local M = {}

---@class codellama.Keymaps
---@field accept string|false      Accept the whole suggestion (falls back to the key itself).
---@field accept_line string|false Accept the suggestion up to the end of the next line.
---@field accept_word string|false Accept the suggestion up to the end of the next word.
---@field dismiss string|false     Hide the suggestion (falls back to the key itself).
---@field trigger string|false     Ask for a suggestion now (an "invoked" request).
---@field next string|false        Show the next of the server's suggestions (asking for them first).
---@field prev string|false        Show the previous one.

---@class codellama.Options
---@field cmd string[]            Command that starts the server (stdio).
---@field settings table<string, any> Server settings (the `codellama` section, camelCase keys).
---@field filetypes string[]      Filetypes the server attaches to.
---@field debounce_ms integer     Delay after the last keystroke before a request is sent.
---@field keymaps codellama.Keymaps|false Insert-mode mappings; `false` disables all of them.
---@field auto_trigger boolean    Request suggestions while typing (otherwise only via `trigger`).

---@type codellama.Options
M.defaults = {
  cmd = { 'codellama-lsp', 'serve' },
  settings = {},
  filetypes = {
    'c',
    'cpp',
    'go',
    'html',
    'java',
    'javascript',
    'javascriptreact',
    'python',
    'rust',
    'svelte',
    'typescript',
    'typescriptreact',
    'vue',
  },
  debounce_ms = 75,
  auto_trigger = true,
  keymaps = {
    accept = '<Tab>',
    accept_line = '<C-Right>',
    accept_word = '<M-Right>',
    dismiss = '<C-]>',
    trigger = false,
    next = '<M-]>',
    prev = '<M-[>',
  },
}

---@type codellama.Options
M.options = vim.deepcopy(M.defaults)

--- Which of `cmd` and `filetypes` the last setup() was given (the others are defaults, which yield to the
--- user's own |vim.lsp.config()| of the server).
---@type { cmd: boolean, filetypes: boolean }
M.given = { cmd = false, filetypes = false }

--- Merge user options over the defaults. Lists (`cmd`, `filetypes`) are replaced, not merged.
---@param user? table
---@return codellama.Options
function M.setup(user)
  user = user or {}
  vim.validate('opts', user, 'table')
  -- A misspelt option would be ignored without a word.
  local unknown = {}
  for key in pairs(user) do
    if M.defaults[key] == nil then
      unknown[#unknown + 1] = key
    end
  end
  for key in pairs(type(user.keymaps) == 'table' and user.keymaps or {}) do
    if M.defaults.keymaps[key] == nil then
      unknown[#unknown + 1] = 'keymaps.' .. key
    end
  end
  if #unknown > 0 then
    table.sort(unknown)
    vim.notify_once(('codellama: unknown option(s) %s, ignored; see :help codellama-setup'):format(
      table.concat(unknown, ', ')), vim.log.levels.WARN)
  end

  local opts = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), user)
  -- tbl_deep_extend merges list-like tables index by index; a shorter user list must win as a whole.
  opts.cmd = user.cmd and vim.deepcopy(user.cmd) or opts.cmd
  opts.filetypes = user.filetypes and vim.deepcopy(user.filetypes) or opts.filetypes
  if user.keymaps == false then
    opts.keymaps = false
  end

  vim.validate('cmd', opts.cmd, function(v)
    return vim.islist(v) and #v > 0
  end, 'non-empty list of strings')
  vim.validate('settings', opts.settings, 'table')
  vim.validate('filetypes', opts.filetypes, vim.islist, 'list of filetypes')
  vim.validate('debounce_ms', opts.debounce_ms, 'number')
  vim.validate('auto_trigger', opts.auto_trigger, 'boolean')
  vim.validate('keymaps', opts.keymaps, function(v)
    return v == false or type(v) == 'table'
  end, 'table or false')
  for name, lhs in pairs(opts.keymaps or {}) do
    vim.validate('keymaps.' .. name, lhs, function(v)
      return v == false or type(v) == 'string'
    end, 'key or false')
  end

  M.options = opts
  M.given = { cmd = user.cmd ~= nil, filetypes = user.filetypes ~= nil }
  return opts
end

--- The `codellama` settings section as sent to the server (never an empty JSON array).
---@return table
function M.server_settings()
  local settings = vim.deepcopy(M.options.settings)
  if next(settings) == nil then
    return vim.empty_dict()
  end
  return settings
end

return M
