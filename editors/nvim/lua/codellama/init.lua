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
M.restart = lsp.restart
M.docstring = commands.docstring

--- Change server settings at runtime (sent with `workspace/didChangeConfiguration`).
---@param settings table<string, any> camelCase keys of the `codellama` section
function M.update_settings(settings)
  lsp.update_settings(settings)
end

--- `""`, `"stopped"`, `"loading"`, `"failed"`, `"ready"`, `"slow"` or `"off"` for the current buffer; handy in a
--- statusline.
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

--- The keys the plugin mapped in each buffer, each with what it was mapped to before (maparg(); empty
--- when it was not), so that setup() and detaching remove exactly those and give back the user's own.
---@type table<integer, table<string, table>>
local mapped = {}

--- Do what {lhs} did before the plugin mapped it: the user's own mapping ({saved}), or the key itself.
---@param lhs string
---@param saved table maparg() of {lhs} before the plugin mapped it
local function fall_back(lhs, saved)
  if saved.buffer ~= 1 then
    -- A global mapping may have been made, changed or removed since the key was mapped here (a plugin
    -- loaded on InsertEnter, a mapping in after/): use the one there is now.
    local key = vim.keycode(lhs)
    saved = vim.iter(api.nvim_get_keymap('i')):find(function(m)
      return vim.keycode(m.lhs) == key
    end) or {}
  end
  if vim.tbl_isempty(saved) then
    api.nvim_feedkeys(vim.keycode(lhs), 'in', false)
    return
  end
  if saved.callback and saved.expr == 0 then
    saved.callback()
    return
  end
  local keys ---@type string?
  if saved.callback then
    keys = saved.callback()
    keys = keys and saved.replace_keycodes == 1 and vim.keycode(keys) or keys
  elseif saved.expr == 1 then
    keys = vim.fn.eval(saved.rhs)
  else
    keys = vim.keycode(saved.rhs)
  end
  -- 'i': before what is still typed ahead; 'm' where the user's mapping allows remapping.
  api.nvim_feedkeys(keys or '', (saved.noremap == 1 or saved.script == 1) and 'in' or 'im', false)
end

--- Map {lhs} in Insert mode in {bufnr} to {action}, which gets what the key was mapped to before.
---@param bufnr integer
---@param lhs string
---@param action fun(saved: table)
---@param desc string
local function map_key(bufnr, lhs, action, desc)
  local saved = api.nvim_buf_call(bufnr, function()
    return vim.fn.maparg(lhs, 'i', false, true)
  end)
  mapped[bufnr] = mapped[bufnr] or {}
  mapped[bufnr][lhs] = saved
  vim.keymap.set('i', lhs, function()
    action(saved)
  end, { buffer = bufnr, desc = desc })
end

--- An insert-mode mapping that runs {action} when a suggestion is shown and otherwise does what {lhs}
--- did before (also while the completion menu is shown, which <Tab> and the like often move in).
---@param bufnr integer
---@param lhs string
---@param action string function name in this module
---@param desc string
local function map_with_fallback(bufnr, lhs, action, desc)
  map_key(bufnr, lhs, function(saved)
    if vim.fn.pumvisible() == 0 and suggestion.is_visible() then
      M[action]()
    else
      fall_back(lhs, saved)
    end
  end, desc)
end

--- Remove the keys the plugin mapped in {bufnr}, giving back the user's buffer-local mappings of them.
---@param bufnr integer
local function unmap_keys(bufnr)
  for lhs, saved in pairs(mapped[bufnr] or {}) do
    pcall(vim.keymap.del, 'i', lhs, { buffer = bufnr })
    if saved.buffer == 1 then
      pcall(api.nvim_buf_call, bufnr, function()
        vim.fn.mapset('i', false, saved)
      end)
    end
  end
  mapped[bufnr] = nil
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
    map_key(bufnr, keys.trigger, M.trigger, 'codellama: request suggestion')
  end
  if keys.next then
    map_key(bufnr, keys.next, M.next, 'codellama: next suggestion')
  end
  if keys.prev then
    map_key(bufnr, keys.prev, M.prev, 'codellama: previous suggestion')
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
    map_key(bufnr, keys.accept, function(saved)
      if vim.fn.pumvisible() == 1 or not builtin.get() then
        fall_back(keys.accept, saved)
      end
    end, 'codellama: accept suggestion')
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
  -- <C-c> leaves Insert mode without InsertLeave; <C-o> and Select mode leave it too.
  api.nvim_create_autocmd('ModeChanged', {
    group = augroup,
    buffer = bufnr,
    callback = function()
      if vim.v.event.new_mode:sub(1, 1) ~= 'i' then
        suggestion.dismiss()
      end
    end,
  })
  -- The completion menu takes <Tab> and the like: no ghost text while it is shown, and ask again after.
  api.nvim_create_autocmd('CompleteChanged', { group = augroup, buffer = bufnr, callback = suggestion.dismiss })
  api.nvim_create_autocmd('CompleteDone', {
    group = augroup,
    buffer = bufnr,
    callback = function()
      vim.schedule(suggestion.refresh)
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
  unmap_keys(bufnr)
end

--- Start codellama-lsp for the configured filetypes and set up ghost-text completions.
---@param opts? codellama.Options|table
function M.setup(opts)
  local old_settings = config.options.settings
  config.setup(opts)
  -- A running server asked for the settings once, when it started: tell it about new ones.
  if not vim.deep_equal(old_settings, config.options.settings) then
    lsp.push_settings(old_settings)
    if old_settings.enabled ~= config.options.settings.enabled then
      lsp.apply_enabled()
    end
  end
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
      unmap_keys(bufnr) -- the keys of the old options
      attach(bufnr)
    end
  end

  lsp.enable()
end

return M
