--- Inline (ghost text) suggestions: requesting `textDocument/inlineCompletion`,
--- drawing an item with extmarks, cycling through the items, and accepting or
--- dismissing the one shown.
---
--- Suggestions exist at one place at a time: the cursor of the current
--- insert-mode window. One of them is shown.
local config = require('codellama.config')
local lsp = require('codellama.lsp')

local api = vim.api

local M = {}

M.ns = api.nvim_create_namespace('codellama.suggestion')
M.hl_group = 'CodellamaSuggestion'

---@class codellama.Snapshot
---@field bufnr integer
---@field tick integer  b:changedtick
---@field row integer   0-based cursor line
---@field col integer   0-based cursor byte column

---@class codellama.Suggestion: codellama.Snapshot
---@field client_id integer
---@field text string          What is still to be inserted at the cursor (the ghost text).
---@field replace_end integer  Byte column on `row` up to which existing text is replaced on accept.
---@field line_rest string     The text of `row` after the cursor when the suggestion was drawn.
---@field is_snippet boolean   The item's insertText is a snippet (expanded with |vim.snippet|).
---@field snippet string?      Full snippet text of the item (only when `is_snippet`).
---@field snippet_start integer? Byte column where the snippet's range starts.
---@field command lsp.Command? Command to run after the item has been accepted.

---@class codellama.Request
---@field client vim.lsp.Client
---@field id integer
---@field snapshot codellama.Snapshot

---@type codellama.Suggestion?
local current = nil
--- The answer's suggestions (`current` is one of them), and which one is shown.
---@type codellama.Suggestion[]
local choices = {}
local choice = 1
---@type codellama.Request?
local pending = nil
---@type uv.uv_timer_t?
local timer = nil
--- Bumped by cancel(): a debounce that fired before it but whose callback runs after it (the callback is
--- queued with vim.schedule) sees the change and sends nothing.
local timer_ticket = 0
--- Where the last answer (possibly empty) was received; not asked again until something changes.
---@type codellama.Snapshot?
local answered = nil

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

---@return codellama.Snapshot
local function snapshot()
  local bufnr = api.nvim_get_current_buf()
  local cursor = api.nvim_win_get_cursor(0)
  return { bufnr = bufnr, tick = api.nvim_buf_get_changedtick(bufnr), row = cursor[1] - 1, col = cursor[2] }
end

---@param a codellama.Snapshot?
---@param b codellama.Snapshot?
---@return boolean
local function same_place(a, b)
  return a ~= nil and b ~= nil and a.bufnr == b.bufnr and a.tick == b.tick and a.row == b.row and a.col == b.col
end

---@return boolean
local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

---@param bufnr integer
---@param row integer
---@return string
local function get_line(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

--- LSP character offset → byte column on a line.
---@param line string
---@param character integer
---@param encoding string
---@return integer
local function byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  return vim.str_byteindex(line, encoding, character, false)
end

--- Text as it is displayed from virtual column {vcol} on: tabs expanded to the next tab stop (virtual
--- text does not expand them).
---@param text string
---@param vcol integer
---@return string
local function display(text, vcol)
  local tabstop = vim.bo.tabstop
  local parts = vim.split(text, '\t', { plain = true })
  for i = 1, #parts - 1 do
    vcol = vcol + api.nvim_strwidth(parts[i])
    local pad = tabstop - vcol % tabstop
    parts[i] = parts[i] .. string.rep(' ', pad)
    vcol = vcol + pad
  end
  return table.concat(parts)
end

--- Approximate display of a snippet: placeholders shown by their default text.
---@param text string
---@return string
local function snippet_preview(text)
  local preview = text:gsub('%${%d+:([^}]*)}', '%1'):gsub('%${%d+}', ''):gsub('%$%d+', ''):gsub('\\([$}\\])', '%1')
  return preview
end

---@param bufnr integer
---@return boolean
local function is_auto_trigger_allowed(bufnr)
  return config.options.auto_trigger and vim.b[bufnr].codellama_enabled ~= false and vim.g.codellama_enabled ~= false
end

-- ---------------------------------------------------------------------------
-- Drawing
-- ---------------------------------------------------------------------------

local function clear_extmark()
  if current and api.nvim_buf_is_valid(current.bufnr) then
    api.nvim_buf_clear_namespace(current.bufnr, M.ns, 0, -1) -- the text, and the count beside it
  end
end

---@param s codellama.Suggestion
local function draw(s)
  local lines = vim.split(s.text, '\n', { plain = true })
  local line = get_line(s.bufnr, s.row)
  local cursor_vcol = vim.fn.strdisplaywidth(line:sub(1, s.col))
  -- What follows the replaced text on the line: after the suggestion once accepted.
  local rest = s.line_rest:sub(s.replace_end - s.col + 1)
  ---@type vim.api.keyset.set_extmark
  local opts = {
    virt_text_pos = 'inline',
    hl_mode = 'combine',
    right_gravity = false,
    priority = 65535,
  }
  --- Chunks showing {ghost} then {tail} (existing text, in its usual colour) from virtual column {vcol}.
  local function chunks(ghost, tail, vcol)
    ghost = display(ghost, vcol)
    local list = { { ghost, M.hl_group } }
    if tail ~= '' then
      list[2] = { display(tail, vcol + api.nvim_strwidth(ghost)) }
    end
    return list
  end

  -- A one-line item that ends with the text it replaces (`2)` over `)`) inserts the rest before it.
  local replaced = s.line_rest:sub(1, s.replace_end - s.col)
  local inserted = lines[1]
  if #lines == 1 and #replaced < #inserted and inserted:sub(-#replaced) == replaced then
    inserted = inserted:sub(1, #inserted - #replaced)
    replaced = ''
  end
  if s.line_rest == '' or (#lines == 1 and replaced == '') then
    -- Inserted before the rest of the line (if any), which the inline text pushes aside as typing would;
    -- unlike an overlay, that also shows right where the line wraps.
    if inserted ~= '' then
      opts.virt_text = chunks(inserted, '', cursor_vcol)
    end
  else
    -- The rest of the line changes (partly replaced, or moved below the suggestion's last line): draw the
    -- line as it will be over the old text, and blank what is left of that.
    opts.virt_text_pos = 'overlay'
    opts.virt_text = chunks(lines[1], #lines == 1 and rest or '', cursor_vcol)
    local width = 0
    for _, chunk in ipairs(opts.virt_text) do
      width = width + api.nvim_strwidth(chunk[1])
    end
    table.insert(opts.virt_text, { string.rep(' ', vim.fn.strdisplaywidth(line) - cursor_vcol - width) })
  end
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      table.insert(opts.virt_lines, chunks(lines[i], i == #lines and rest or '', 0))
    end
  end
  -- Which of the server's suggestions this is, at the end of the line (after the overlay, if any).
  local count = #choices > 1 and { (' (%d/%d)'):format(choice, #choices), M.hl_group } or nil
  if count and opts.virt_text_pos == 'overlay' then
    table.insert(opts.virt_text, count)
    count = nil
  end
  -- Only in this window: another one showing the buffer has no cursor there. (nvim__ns_set is
  -- experimental: where it is missing or has changed, the text shows in every window, as before.)
  if api.nvim__ns_set then
    pcall(api.nvim__ns_set, M.ns, { wins = { api.nvim_get_current_win() } })
  end
  api.nvim_buf_set_extmark(s.bufnr, M.ns, s.row, s.col, opts)
  if count then
    api.nvim_buf_set_extmark(s.bufnr, M.ns, s.row, 0, {
      virt_text = { count },
      virt_text_pos = 'eol',
      hl_mode = 'combine',
    })
  end
  -- Virtual lines below the window's last line are not drawn: scroll them into view.
  local overflow = vim.fn.winline() + #(opts.virt_lines or {}) - api.nvim_win_get_height(0)
  if overflow > 0 then
    local view = vim.fn.winsaveview()
    vim.fn.winrestview({ topline = math.min(view.topline + overflow, s.row + 1) })
  end
end

--- Hide the suggestion, if any.
function M.clear()
  clear_extmark()
  current = nil
  choices, choice = {}, 1
end

---@param list codellama.Suggestion[]
---@param index integer
local function show(list, index)
  M.clear()
  choices, choice = list, index
  current = list[index]
  draw(current)
end

--- Cancel the in-flight request and the debounce timer.
function M.cancel()
  timer_ticket = timer_ticket + 1
  if timer then
    timer:stop()
  end
  if pending then
    local req = pending
    pending = nil
    if not req.client:is_stopped() then
      req.client:cancel_request(req.id)
    end
  end
end

-- ---------------------------------------------------------------------------
-- Building a suggestion from an LSP item
-- ---------------------------------------------------------------------------

--- Turn an InlineCompletionItem into a suggestion at the snapshot's cursor, or
--- nil when it cannot be shown as text inserted at the cursor (e.g. its range
--- starts on another line, or the item does not agree with what was typed).
---@param item lsp.InlineCompletionItem
---@param snap codellama.Snapshot
---@param client vim.lsp.Client
---@return codellama.Suggestion?
local function from_item(item, snap, client)
  local insert = item.insertText
  local is_snippet = type(insert) == 'table'
  local text = is_snippet and insert.value or insert
  if type(text) ~= 'string' then
    return nil
  end
  text = text:gsub('\r\n', '\n')

  local line = get_line(snap.bufnr, snap.row)
  local start_col, end_col = snap.col, snap.col
  if item.range and item.range ~= vim.NIL then
    local r = item.range
    if r.start.line ~= snap.row or r['end'].line ~= snap.row then
      return nil
    end
    start_col = byte_col(line, r.start.character, client.offset_encoding)
    end_col = byte_col(line, r['end'].character, client.offset_encoding)
    if start_col > snap.col or end_col < snap.col then
      return nil
    end
  end

  -- The part of the range before the cursor has been typed already; the item
  -- must start with it (case-sensitively) to be shown as a continuation.
  local typed = line:sub(start_col + 1, snap.col)
  local full = is_snippet and snippet_preview(text) or text
  if full:sub(1, #typed) ~= typed then
    return nil
  end
  local shown = full:sub(#typed + 1)
  if shown == '' then
    return nil
  end

  ---@type codellama.Suggestion
  return {
    bufnr = snap.bufnr,
    tick = snap.tick,
    row = snap.row,
    col = snap.col,
    client_id = client.id,
    text = shown,
    replace_end = end_col,
    line_rest = line:sub(snap.col + 1),
    is_snippet = is_snippet,
    snippet = is_snippet and text or nil,
    snippet_start = start_col,
    command = item.command ~= vim.NIL and item.command or nil,
  }
end

-- ---------------------------------------------------------------------------
-- Requesting
-- ---------------------------------------------------------------------------

--- Send `textDocument/inlineCompletion` for the cursor now.
---@param trigger_kind? integer 1 = invoked (explicit), 2 = automatic (typing, default)
---@param from? { text: string, step: integer } Cycling: show the item {step} away from the one with {text}.
function M.request(trigger_kind, from)
  M.cancel()
  local bufnr = api.nvim_get_current_buf()
  local client = lsp.get_client(bufnr)
  if not client or not in_insert_mode() or not client.server_capabilities.inlineCompletionProvider then
    return
  end

  local snap = snapshot()
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  ---@cast params lsp.InlineCompletionParams
  params.context = { triggerKind = trigger_kind or 2 }

  local req ---@type codellama.Request?
  local ok, id = client:request('textDocument/inlineCompletion', params, function(err, result)
    if pending ~= req then
      return -- superseded or cancelled
    end
    pending = nil
    answered = snap
    if err then
      if err.code ~= -32800 then -- RequestCancelled
        vim.notify_once('codellama: inlineCompletion failed: ' .. (err.message or vim.inspect(err)), vim.log.levels.WARN)
      end
      return
    end
    -- Drop results for a cursor/buffer state that no longer exists, and while the completion menu is
    -- shown (<Tab> and the like are for the menu then; CompleteDone asks again).
    if not in_insert_mode() or not same_place(snap, snapshot()) or vim.fn.pumvisible() == 1 then
      return
    end
    if result == nil or result == vim.NIL then
      return
    end
    -- InlineCompletionList or InlineCompletionItem[]
    local found = {}
    for _, item in ipairs(result.items or result) do
      local s = from_item(item, snap, client)
      if s then
        table.insert(found, s)
      end
    end
    if #found == 0 then
      return
    end
    local index = 1
    for i, s in ipairs(from and found or {}) do
      if s.text == from.text then
        index = (i - 1 + from.step) % #found + 1
        break
      end
    end
    show(found, index)
  end, bufnr)
  if ok and id then
    req = { client = client, id = id, snapshot = snap }
    pending = req
  end
end

--- Debounced automatic request after typing / cursor movement.
function M.schedule()
  timer = timer or assert(vim.uv.new_timer())
  timer:stop()
  local ticket = timer_ticket
  timer:start(
    config.options.debounce_ms,
    0,
    vim.schedule_wrap(function()
      -- Dismissed or turned off since the timer fired: nothing is asked for.
      if ticket == timer_ticket and in_insert_mode() and is_auto_trigger_allowed(api.nvim_get_current_buf()) then
        M.request(2)
      end
    end)
  )
end

--- The buffer's text from ({row}, {col}) to ({end_row}, {end_col}) (0-based rows, byte columns), lines joined
--- with "\n"; nil where a row is no longer in the buffer. A column past the end of its line counts from the
--- end (as where <CR> on a line of nothing but auto-indent removes that indent).
---@param bufnr integer
---@param row integer
---@param col integer
---@param end_row integer
---@param end_col integer
---@return string?
local function text_between(bufnr, row, col, end_row, end_col)
  local ok, lines = pcall(api.nvim_buf_get_text, bufnr, row, col, end_row, end_col, {})
  return ok and table.concat(lines, '\n') or nil
end

--- If the user typed exactly the next characters of the suggestion, keep it
--- (shortened) instead of asking the server again. That includes line breaks: <CR> types "\n" and the
--- new line's auto-indent, which is kept through when the suggestion's next line starts with that indent
--- (it then shows the rest of its indent). Where the editor indented differently, the suggestion was made
--- for other code (in Python the indent is the block), so it is asked again, as the server's cache would.
---@param snap codellama.Snapshot
---@return boolean kept
local function type_through(snap)
  local s = current
  local moved_on = s ~= nil and (snap.row > s.row or (snap.row == s.row and snap.col > s.col))
  if not s or s.is_snippet or s.bufnr ~= snap.bufnr or not moved_on then
    return false
  end
  local typed = text_between(snap.bufnr, s.row, s.col, snap.row, snap.col)
  if not typed or s.text:sub(1, #typed) ~= typed or #typed >= #s.text then
    return false
  end
  -- The rest of the line follows the cursor, also onto the new line after a line break.
  if get_line(snap.bufnr, snap.row):sub(snap.col + 1) ~= s.line_rest then
    return false -- something else changed the rest of the line (autopairs, …)
  end
  clear_extmark()
  s.text = s.text:sub(#typed + 1)
  s.replace_end = snap.col + (s.replace_end - s.col)
  s.tick, s.row, s.col = snap.tick, snap.row, snap.col
  choices, choice = { s }, 1 -- the others were for the cursor before
  draw(s)
  return true
end

--- Handler for TextChangedI / TextChangedP / CursorMovedI in an attached buffer.
function M.on_change()
  local snap = snapshot()
  if same_place(current, snap) or same_place(answered, snap) or (pending and same_place(pending.snapshot, snap)) then
    return -- nothing changed since the suggestion was drawn / requested / answered
  end
  if type_through(snap) then
    M.cancel()
    return
  end
  M.clear()
  M.cancel()
  if is_auto_trigger_allowed(snap.bufnr) and vim.bo[snap.bufnr].buftype == '' then
    M.schedule()
  end
end

--- Ask again at the cursor even if the server already answered there (on entering
--- Insert mode, or after an empty answer given while the model was still loading).
function M.refresh()
  answered = nil
  M.on_change()
end

-- ---------------------------------------------------------------------------
-- Accepting
-- ---------------------------------------------------------------------------

--- Whether a suggestion is shown at the cursor of the current window.
---@return boolean
function M.is_visible()
  return current ~= nil and same_place(current, snapshot())
end

--- A copy of the shown suggestion (for statuslines, tests and other plugins): `index` of `count`.
---@return { text: string, bufnr: integer, row: integer, col: integer, replace_end: integer, index: integer, count: integer }?
function M.get()
  if not M.is_visible() then
    return nil
  end
  local s = assert(current)
  return {
    text = s.text,
    bufnr = s.bufnr,
    row = s.row,
    col = s.col,
    replace_end = s.replace_end,
    index = choice,
    count = #choices,
  }
end

--- Show the next ({step} 1) or previous ({step} -1) suggestion, wrapping around. While only the one
--- made as the user typed is there (or none), ask the server for its alternatives (an invoked
--- request, as VS Code does on Alt+]) and show the one {step} away from it.
---@param step integer
function M.cycle(step)
  if M.is_visible() and #choices > 1 then
    clear_extmark()
    choice = (choice - 1 + step) % #choices + 1
    current = choices[choice]
    draw(current)
    return
  end
  M.request(1, M.is_visible() and { text = assert(current).text, step = step } or nil)
end

--- Insert {text} at the suggestion's cursor, replacing up to {replace_end}, and
--- put the cursor after it.
---@param s codellama.Suggestion
---@param text string
---@param replace_end integer
local function insert_at_cursor(s, text, replace_end)
  local lines = vim.split(text, '\n', { plain = true })
  api.nvim_buf_set_text(s.bufnr, s.row, s.col, s.row, replace_end, lines)
  local end_row = s.row + #lines - 1
  local end_col = (#lines == 1 and s.col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { end_row + 1, end_col })
end

--- Bytes of {text} that accepting {part} of it takes: up to the end of the next line, or the next
--- word (the blanks before it, then a run of letters, non-ASCII characters, digits and `_`, or of
--- other characters, as `Ctrl+Right` does in VS Code). Nil when the part is the whole text.
---@param text string
---@param part 'line'|'word'
---@return integer?
local function part_length(text, part)
  local stop
  if part == 'line' then
    stop = text:find('\n', text:sub(1, 1) == '\n' and 2 or 1, true)
    stop = stop and stop - 1
  else
    -- Bytes >= 128 (non-ASCII UTF-8) count as word characters, so that `größe` is one word.
    local blanks = #text:match('^%s*')
    stop = text:match('^[%w_\128-\255]+()', blanks + 1) or text:match('^[^%w_%s\128-\255]+()', blanks + 1)
    stop = stop and stop - 1
  end
  if stop and stop < #text then
    return stop
  end
end

--- Accept the suggestion.
---@param part? 'all'|'line'|'word' `line` or `word`: only up to the end of the next one; the rest stays shown.
---@return boolean accepted false when no suggestion was shown
function M.accept(part)
  if not M.is_visible() then
    return false
  end
  local s = assert(current)
  M.cancel()
  clear_extmark()

  if (part == 'line' or part == 'word') and not s.is_snippet then
    local stop = part_length(s.text, part)
    if stop then
      insert_at_cursor(s, s.text:sub(1, stop), s.col)
      -- Keep the remainder as the suggestion at the new cursor; the replaced
      -- text after the old cursor (if any) now follows the new one.
      local snap = snapshot()
      s.text = s.text:sub(stop + 1)
      s.replace_end = snap.col + (s.replace_end - s.col)
      s.line_rest = get_line(snap.bufnr, snap.row):sub(snap.col + 1)
      s.tick, s.row, s.col = snap.tick, snap.row, snap.col
      choices, choice = { s }, 1
      draw(s)
      return true
    end
  end

  current, choices, choice = nil, {}, 1
  if s.is_snippet then
    api.nvim_buf_set_text(s.bufnr, s.row, s.snippet_start, s.row, s.replace_end, { '' })
    api.nvim_win_set_cursor(0, { s.row + 1, s.snippet_start })
    vim.snippet.expand(assert(s.snippet))
  else
    insert_at_cursor(s, s.text, s.replace_end)
  end

  if s.command then
    local client = vim.lsp.get_client_by_id(s.client_id)
    if client then
      client:exec_cmd(s.command, { bufnr = s.bufnr }, function() end)
    end
  end
  return true
end

--- Hide the suggestion and stop waiting for one.
---@return boolean dismissed false when nothing was shown
function M.dismiss()
  local was_visible = M.is_visible()
  M.cancel()
  M.clear()
  return was_visible
end

return M
