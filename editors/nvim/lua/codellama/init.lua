--- codellama.nvim: inline completions from a local Code Llama served by codellama-lsp.
---
--- ```lua
--- require('codellama').setup({
---   cmd = { 'codellama-lsp', 'serve', '--quant', 'nf4' },
---   settings = { maxTokens = 64, docstringStyle = 'numpy' },
--- })
--- ```
--- See `:help codellama`.
local config = require('codellama.config')
local lsp = require('codellama.lsp')
local suggestion = require('codellama.suggestion')
local commands = require('codellama.commands')

local api = vim.api

local M = {}

local augroup = api.nvim_create_augroup('codellama', { clear = true })

-- ---------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------

--- Accept the shown suggestion. Returns false when there was none.
---@return boolean
function M.accept()
  return suggestion.accept('all')
end

--- Accept the shown suggestion up to the end of its next line.
---@return boolean
function M.accept_line()
  return suggestion.accept('line')
end

--- Accept the shown suggestion up to the end of its next word.
---@return boolean
function M.accept_word()
  return suggestion.accept('word')
end

--- Hide the shown suggestion. Returns false when there was none.
---@return boolean
function M.dismiss()
  return suggestion.dismiss()
end

--- Ask for a suggestion at the cursor now (an "invoked" request, no debounce).
function M.trigger()
  suggestion.request(1)
end

--- Show the next suggestion (the server offers several when asked; the first press asks).
function M.next()
  suggestion.cycle(1)
end

--- Show the previous suggestion.
function M.prev()
  suggestion.cycle(-1)
end

--- Whether a suggestion is shown at the cursor.
---@return boolean
function M.is_visible()
  return suggestion.is_visible()
end

--- The shown suggestion: `{ text, bufnr, row, col, replace_end, index, count }` (0-based row/byte col;
--- the `index`-th of `count` suggestions), or nil.
---@return table?
function M.get_suggestion()
  return suggestion.get()
end

--- Fetch `codellama.status`; without {on_status} it is printed.
---@param on_status? fun(status: table)
function M.status(on_status)
  commands.status(on_status)
end

M.toggle = commands.toggle
M.reload = commands.reload
M.docstring = commands.docstring

--- Change server settings at runtime (sent with `workspace/didChangeConfiguration`).
---@param settings table<string, any> camelCase keys of the `codellama` section
function M.update_settings(settings)
  lsp.update_settings(settings)
end

--- `""`, `"loading"`, `"ready"` or `"off"` for the current buffer; handy in a statusline.
---@return string
function M.statusline()
  return lsp.status_text()
end

-- ---------------------------------------------------------------------------
-- Keymaps
-- ---------------------------------------------------------------------------

--- `<Plug>` mappings, usable by people who set `keymaps = false` and map keys themselves.
local function create_plug_mappings()
  local map = vim.keymap.set
  map('i', '<Plug>(codellama-accept)', M.accept, { desc = 'codellama: accept suggestion' })
  map('i', '<Plug>(codellama-accept-line)', M.accept_line, { desc = 'codellama: accept one line' })
  map('i', '<Plug>(codellama-accept-word)', M.accept_word, { desc = 'codellama: accept one word' })
  map('i', '<Plug>(codellama-dismiss)', M.dismiss, { desc = 'codellama: dismiss suggestion' })
  map('i', '<Plug>(codellama-trigger)', M.trigger, { desc = 'codellama: request suggestion' })
  map('i', '<Plug>(codellama-next)', M.next, { desc = 'codellama: next suggestion' })
  map('i', '<Plug>(codellama-prev)', M.prev, { desc = 'codellama: previous suggestion' })
end

--- An insert-mode mapping that runs {action} when a suggestion is shown and
--- otherwise types {lhs} as if it was not mapped.
---@param bufnr integer
---@param lhs string
---@param action string function name in this module
---@param desc string
local function map_with_fallback(bufnr, lhs, action, desc)
  vim.keymap.set('i', lhs, function()
    if suggestion.is_visible() then
      return ('<Cmd>lua require("codellama").%s()<CR>'):format(action)
    end
    return lhs
  end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = desc })
end

---@param bufnr integer
local function create_buffer_keymaps(bufnr)
  local keys = config.options.keymaps
  if not keys then
    return
  end
  if keys.accept then
    map_with_fallback(bufnr, keys.accept, 'accept', 'codellama: accept suggestion')
  end
  if keys.accept_line then
    map_with_fallback(bufnr, keys.accept_line, 'accept_line', 'codellama: accept one line')
  end
  if keys.accept_word then
    map_with_fallback(bufnr, keys.accept_word, 'accept_word', 'codellama: accept one word')
  end
  if keys.dismiss then
    map_with_fallback(bufnr, keys.dismiss, 'dismiss', 'codellama: dismiss suggestion')
  end
  if keys.trigger then
    vim.keymap.set('i', keys.trigger, M.trigger, { buffer = bufnr, desc = 'codellama: request suggestion' })
  end
  if keys.next then
    vim.keymap.set('i', keys.next, M.next, { buffer = bufnr, desc = 'codellama: next suggestion' })
  end
  if keys.prev then
    vim.keymap.set('i', keys.prev, M.prev, { buffer = bufnr, desc = 'codellama: previous suggestion' })
  end
end

-- ---------------------------------------------------------------------------
-- Attaching
-- ---------------------------------------------------------------------------

--- Neovim 0.12+ draws inline completions itself (|vim.lsp.inline_completion|): use it, with the
--- plugin's accept key; 0.11 gets the plugin's own ghost text.
---@param bufnr integer
local function attach_builtin(bufnr)
  local builtin = assert(vim.lsp.inline_completion)
  builtin.enable(true, { bufnr = bufnr })
  local keys = config.options.keymaps
  if keys and keys.accept then
    local lhs = keys.accept
    vim.keymap.set('i', lhs, function()
      if not builtin.get() then
        return lhs
      end
    end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = 'codellama: accept suggestion' })
  end
end

---@param bufnr integer
local function attach(bufnr)
  if vim.b[bufnr].codellama_attached then
    return
  end
  vim.b[bufnr].codellama_attached = true
  if vim.lsp.inline_completion then
    return attach_builtin(bufnr)
  end
  create_buffer_keymaps(bufnr)

  api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP', 'CursorMovedI' }, {
    group = augroup,
    buffer = bufnr,
    callback = suggestion.on_change,
  })
  -- A new Insert session asks again, even where the last one was answered.
  api.nvim_create_autocmd('InsertEnter', { group = augroup, buffer = bufnr, callback = suggestion.refresh })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = augroup,
    buffer = bufnr,
    callback = function()
      suggestion.dismiss()
    end,
  })
end

---@param bufnr integer
local function detach(bufnr)
  if not vim.b[bufnr].codellama_attached then
    return
  end
  vim.b[bufnr].codellama_attached = nil
  if vim.lsp.inline_completion then
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
  end
  suggestion.dismiss()
  api.nvim_clear_autocmds({ group = augroup, buffer = bufnr })
  local keys = config.options.keymaps
  if keys then
    for _, lhs in pairs(keys) do
      if lhs then
        pcall(vim.keymap.del, 'i', lhs, { buffer = bufnr })
      end
    end
  end
end

--- Start codellama-lsp for the configured filetypes and set up ghost-text completions.
---@param opts? codellama.Options|table
function M.setup(opts)
  config.setup(opts)
  api.nvim_clear_autocmds({ group = augroup })

  -- Grey italics, visible in 16- and 256-colour terminals (ctermfg 8: bright black) and in true colour;
  -- `default` keeps a colorscheme's or the user's own definition.
  local function set_highlight()
    api.nvim_set_hl(0, suggestion.hl_group, {
      fg = '#808080',
      ctermfg = 8,
      italic = true,
      cterm = { italic = true },
      default = true,
    })
  end
  set_highlight()
  api.nvim_create_autocmd('ColorScheme', { group = augroup, callback = set_highlight })
  create_plug_mappings()
  commands.create()
  -- Once the model has loaded, make up for the (empty) answers given while it was loading.
  lsp.track_progress(augroup, function(client)
    local bufnr = api.nvim_get_current_buf()
    if vim.b[bufnr].codellama_attached and client.attached_buffers[bufnr] then
      suggestion.refresh()
    end
  end)

  -- Follow our own server's buffers only.
  for event, handler in pairs({ LspAttach = attach, LspDetach = detach }) do
    api.nvim_create_autocmd(event, {
      group = augroup,
      callback = function(args)
        local client = vim.lsp.get_client_by_id(args.data.client_id)
        if client and client.name == lsp.name then
          handler(args.buf)
        end
      end,
    })
  end

  -- Buffers already attached when setup() runs again (e.g. after changing options).
  for _, client in ipairs(vim.lsp.get_clients({ name = lsp.name })) do
    for bufnr in pairs(client.attached_buffers) do
      vim.b[bufnr].codellama_attached = nil
      attach(bufnr)
    end
  end

  lsp.enable()
end

return M
