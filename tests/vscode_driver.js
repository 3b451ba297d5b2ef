// Drives a real VS Code workbench (code-server in headless Chromium, through playwright-core) the way a
// user would: types, presses Tab / Alt+\ / Ctrl+., uses the context menu and the command palette.
// tests/test_vscode.py starts code-server with the extension installed, runs this script and checks
// what it reports in $CODELLAMA_OUT/result.json (observations and the time of each stage).
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const OUT = env('CODELLAMA_OUT');
const SAMPLE = env('CODELLAMA_SAMPLE');
const NOTEBOOK = env('CODELLAMA_NOTEBOOK');
const MACHINE_SETTINGS = env('CODELLAMA_MACHINE_SETTINGS');
const SERVER_PID = env('CODELLAMA_SERVER_PID'); // written by the server's wrapper script at each start
const BROKEN = env('CODELLAMA_BROKEN'); // while this file exists, the server fails at start
const SLOW = env('CODELLAMA_SLOW'); // a server started while this file exists reads prompts slowly ...
const SLOW_ARM = env('CODELLAMA_SLOW_ARM'); // ... while this one exists: 1.5 s per 8 tokens
const PLAIN_MODEL = env('CODELLAMA_PLAIN_MODEL'); // loads, but has no infilling pieces (Code Llama - Python)
const USER_SETTINGS = path.join(path.dirname(MACHINE_SETTINGS), '..', 'User', 'settings.json');
const STATUS_ITEM = '[id="codellama-lsp.codellama-lsp.codellama.status"]';
// Ghost text: the rest of the cursor line is injected into it, the lines below go into a view zone.
const GHOST_INLINE = '.view-lines .ghost-text-decoration';
const GHOST_LINES = '.suggest-preview-text .view-line';

const result = { stages: [] };
let page;

async function waitFor(what, predicate, timeoutMs = 30000) {
  const start = Date.now();
  for (;;) {
    const value = await predicate().catch(() => undefined);
    if (value) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await page.waitForTimeout(200);
  }
}

async function stage(name, body) {
  const start = Date.now();
  result.current = name;
  await body();
  result.stages.push({ name, seconds: (Date.now() - start) / 1000 });
}

const statusLabel = () => page.locator(STATUS_ITEM).getAttribute('aria-label', { timeout: 1000 });
const waitForStatus = (word, timeoutMs = 60000) =>
  waitFor(`the status bar item to say "${word}"`, async () => (await statusLabel()).includes(word) && (await statusLabel()), timeoutMs);

/** Runs in the page, before the workbench: keeps each new first line of the status item's label. */
function recordStatusLabels(selector) {
  const labels = (window.codellamaStatusLabels = []);
  new MutationObserver(() => {
    const label = document.querySelector(selector)?.getAttribute('aria-label')?.split('\n')[0];
    if (label && label !== labels[labels.length - 1]) labels.push(label);
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-label'] });
}

/** The ghost text as displayed: `inline` on the cursor line, `lines` below it (empty when none is shown). */
async function ghostText() {
  const texts = (selector) =>
    page.$$eval(selector, (parts) => parts.map((part) => part.textContent.replace(/\u00a0/g, ' ')));
  return { inline: (await texts(GHOST_INLINE)).join(''), lines: await texts(GHOST_LINES) };
}
const ghostShown = async () => {
  const { inline, lines } = await ghostText();
  return inline !== '' || lines.length > 0;
};

/** Put the cursor at the end of the first line that starts with {prefix} (Ctrl+G, like a user). */
async function goToLineStarting(prefix) {
  const lines = await fileLines();
  const index = lines.findIndex((line) => line.startsWith(prefix));
  if (index < 0) throw new Error(`no line starts with ${JSON.stringify(prefix)}`);
  // Each step waits for the one before: keys sent before the Go to Line box has opened would be typed
  // into the document (the workbench can be slow to take them, right after a window reload above all).
  await page.keyboard.press('Control+G');
  await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
  await page.keyboard.type(String(index + 1));
  await page.keyboard.press('Enter');
  await page.waitForSelector('.quick-input-widget', { state: 'hidden' });
  await page.keyboard.press('End');
  const where = `Ln ${index + 1}, Col ${lines[index].length + 1}`; // the sample has no tabs
  await waitFor(`the cursor at the end of line ${index + 1}`, async () => (await cursorLabel()).startsWith(where), 10000);
  return index;
}
/** The status bar's cursor position, "Ln 12, Col 20". */
const cursorLabel = () => page.locator('[id="status.editor.selection"]').textContent({ timeout: 1000 });

/** Open {file} with Quick Open, as a user would: the editor gets the workspace's own URI for it. */
async function quickOpen(file) {
  await page.keyboard.press('Control+P');
  await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
  await page.keyboard.type(path.basename(file));
  await waitFor(`${path.basename(file)} in Quick Open`, () =>
    page.locator('.quick-input-list .monaco-list-row.focused').first().textContent().then((text) => text.includes(path.basename(file))),
  );
  await page.keyboard.press('Enter');
}

async function runCommand(title) {
  await page.keyboard.press('F1');
  await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
  await page.keyboard.type(title);
  await waitFor(`"${title}" in the command palette`, () =>
    page.locator('.quick-input-list .monaco-list-row.focused').first().textContent().then((text) => text.includes(title)),
  );
  await page.keyboard.press('Enter');
}

const toasts = () => page.locator('.notifications-toasts .notification-list-item-message').allTextContents();
/** Status bar labels recorded from the {from}th on. */
const labelsSince = (from) => page.evaluate((n) => window.codellamaStatusLabels.slice(n), from);
const killServer = () => process.kill(Number(fs.readFileSync(SERVER_PID, 'utf8')), 'SIGKILL');

/** Text of the newest notification toast containing {text}. */
const toastWith = (text) =>
  waitFor(`a notification containing "${text}"`, async () => {
    const toasts = await page.locator('.notifications-toasts .notification-list-item-message').allTextContents();
    return toasts.reverse().find((toast) => toast.includes(text));
  });

async function closeToasts() {
  // "Clear all notifications": toasts would otherwise cover the editor in screenshots.
  await runCommand('Notifications: Clear All Notifications');
}

const saveAndRead = async () => {
  await page.keyboard.press('Control+S');
  await page.waitForTimeout(500);
  return fs.readFileSync(SAMPLE, 'utf8');
};
/** The document's lines, all of them (the editor only renders those in view), as saved now. */
const fileLines = async () => (await saveAndRead()).split('\n');

async function main() {
  await stage('workbench loaded, server ready', async () => {
    await page.goto(env('CODELLAMA_URL'));
    await page.waitForSelector('.monaco-workbench .part.statusbar', { timeout: 90000 });
    await waitFor('the workspace in the explorer', () => page.locator('.explorer-folders-view').isVisible(), 60000);
    await quickOpen(SAMPLE);
    await page.waitForSelector('.monaco-editor .view-lines', { timeout: 30000 });
    // Keystrokes before the inline completion provider is registered are never asked again.
    result.readyLabel = await waitForStatus('ready', 120000);
    // Every label the item showed on the way ("ready" must not flash before the model has loaded), as
    // the page recorded them: the model loads in a fraction of a second, too fast to catch by polling.
    result.startLabels = await page.evaluate(() => window.codellamaStatusLabels);
  });

  await stage('ghost text while typing', async () => {
    await page.locator('.monaco-editor .view-lines').click();
    await goToLineStarting('def area(width, height)');
    await page.keyboard.type(':', { delay: 50 });
    await waitFor('ghost text', ghostShown, 30000);
    await page.waitForTimeout(300); // let the view zone with the following lines settle
    result.ghost = await ghostText();
    await page.screenshot({ path: path.join(OUT, 'vscode-ghost-text.png') });
    await page.keyboard.press('Escape');
    await waitFor('Escape to hide the ghost text', async () => !(await ghostShown()), 5000);
  });

  await stage('Alt+\\ asks again, Ctrl+Right accepts a word, Tab the rest', async () => {
    await page.keyboard.press('Alt+Backslash');
    await waitFor('ghost text after Alt+\\', ghostShown, 30000);
    await page.waitForTimeout(300);
    result.explicitGhost = await ghostText();
    // Alt+] shows the server's next suggestion (asked for, it offers several), Alt+[ goes back.
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    await page.keyboard.press('Alt+BracketRight');
    await waitFor('another suggestion after Alt+]', async () => {
      const now = await ghostText();
      return (now.inline || now.lines.length) && !same(now, result.explicitGhost);
    }, 30000);
    await page.waitForTimeout(300); // the cursor line and the view zone below it are redrawn one after the other
    result.nextGhost = await ghostText();
    await page.keyboard.press('Alt+BracketLeft');
    await waitFor('the first suggestion again after Alt+[', async () => same(await ghostText(), result.explicitGhost), 10000);
    result.beforeAccept = await saveAndRead();
    await page.keyboard.press('Control+ArrowRight'); // VS Code's own "accept next word"
    await page.waitForTimeout(300);
    result.afterWord = await saveAndRead();
    result.ghostAfterWord = await ghostShown();
    await page.keyboard.press('Tab');
    await waitFor('the ghost text to be gone', async () => !(await ghostShown()), 5000);
    result.afterAccept = await saveAndRead();
  });

  await stage('ghost text extends the item selected in the suggest widget', async () => {
    await page.keyboard.press('Control+End');
    await page.keyboard.type('\nx = ar', { delay: 50 }); // the demo model goes on with `ange(0)` here
    result.beforeMenu = await saveAndRead();
    // Ghost text for `x = ar` itself, shown while typing, would pass the wait for the one beside the widget
    // below and vanish as the widget opens (seen once: the ghost read after that wait was empty).
    await page.keyboard.press('Escape');
    await waitFor('no ghost text before the widget opens', async () => !(await ghostShown()), 5000);
    await page.keyboard.press('Control+Space'); // word-based suggestions: `area` is selected
    const selected = page.locator('.suggest-widget .monaco-list-row.focused');
    await waitFor('`area` selected in the suggest widget', async () => (await selected.textContent()).includes('area'), 15000);
    // VS Code shows ghost text beside the widget only where it extends the selected item: the server must
    // complete `x = area`, not `x = ar`.
    await waitFor('ghost text beside the suggest widget', ghostShown, 30000);
    result.ghostWithMenu = await ghostText();
    await page.keyboard.press('Tab'); // accepts the selected item; the ghost text goes on from it
    await waitFor('the suggest widget to close', async () => !(await page.locator('.suggest-widget.visible').count()), 5000);
    await waitFor('ghost text after the item', ghostShown, 30000);
    await page.keyboard.press('Tab');
    await waitFor('the ghost text to be gone', async () => !(await ghostShown()), 5000);
    result.afterMenu = await saveAndRead();
  });

  await stage('code action writes a docstring', async () => {
    const row = await goToLineStarting('def add(a, b)');
    await page.keyboard.press('Control+Period');
    const rows = page.locator('.action-widget .monaco-list-row');
    await waitFor('the code action menu', async () => (await rows.count()) > 0, 15000);
    const titles = await rows.allTextContents();
    result.codeActions = titles;
    const target = titles.findIndex((title) => title.includes('Generate docstring for add'));
    if (target < 0) throw new Error(`no docstring action in ${JSON.stringify(titles)}`);
    // Rows are picked with the keyboard: the list may scroll and headers are not selectable.
    const focused = async () => (await page.locator('.action-widget .monaco-list-row.focused').textContent()) ?? '';
    for (let i = 0; i < titles.length && !(await focused()).includes('Generate docstring for add'); i++) {
      await page.keyboard.press('ArrowDown');
    }
    await page.keyboard.press('Enter');
    await waitFor('a docstring under def add', async () => ((await fileLines())[row + 1] ?? '').includes('"""'), 60000);
    result.afterCodeAction = await saveAndRead();
  });

  await stage('context menu writes a docstring', async () => {
    const row = await goToLineStarting('def scale(values, factor)');
    const line = page.locator('.monaco-editor .view-lines .view-line').filter({ hasText: 'def scale(values, factor)' });
    await line.click({ button: 'right' });
    const entry = page.locator('.context-view .action-item:has-text("Generate Docstring")');
    await entry.waitFor({ state: 'visible', timeout: 10000 });
    // Hover highlights the entry, Enter runs it: a click can land while the menu is still opening.
    await entry.hover();
    await page.waitForTimeout(300);
    await page.keyboard.press('Enter');
    await waitFor('a docstring under def scale', async () => ((await fileLines())[row + 1] ?? '').includes('"""'), 60000);
    result.afterContextMenu = await saveAndRead();
  });

  await stage('ghost text in a notebook cell, the cells above in its prompt', async () => {
    await quickOpen(NOTEBOOK);
    const cells = page.locator('.notebook-editor .cell-editor-container .monaco-editor .view-lines');
    await waitFor("the notebook's code cells", async () => (await cells.count()) === 2, 30000);
    await cells.last().click(); // the cell `area = math`
    await page.keyboard.press('Control+End');
    await page.keyboard.type('.', { delay: 50 });
    await waitFor('ghost text in the cell', ghostShown, 30000);
    result.notebookGhost = await ghostText();
    await page.keyboard.press('Tab');
    await waitFor('the ghost text to be gone', async () => !(await ghostShown()), 5000);
    const saved = fs.readFileSync(NOTEBOOK, 'utf8');
    await page.keyboard.press('Control+S');
    await waitFor('the notebook saved', async () => fs.readFileSync(NOTEBOOK, 'utf8') !== saved, 10000);
    result.notebookAfter = JSON.parse(fs.readFileSync(NOTEBOOK, 'utf8')).cells.map((cell) => [].concat(cell.source).join(''));
    await quickOpen(SAMPLE); // back to the file the later stages edit
    await page.waitForTimeout(500);
  });

  await stage('status, toggle and reload', async () => {
    await closeToasts();
    await runCommand('Code Llama: Show Status');
    result.statusToast = await toastWith('Code Llama: state:');
    await closeToasts();
    await runCommand('Code Llama: Toggle Completions');
    result.offLabel = await waitForStatus('completions off');
    // Setting codellama.enabled to true turns them on again, though the toggle left the setting as it was.
    const settings = fs.readFileSync(MACHINE_SETTINGS, 'utf8'); // the file a running window notices
    // An empty codellama.model (the Settings editor's box, emptied) is no model setting: serverArgs' --model stays.
    const changed = { ...JSON.parse(settings), 'codellama.enabled': true, 'codellama.model': '' };
    fs.writeFileSync(MACHINE_SETTINGS, JSON.stringify(changed, null, 2));
    await waitForStatus('ready (click'); // the summary: "completions off" has "state: ready" in its details too
    await runCommand('Code Llama: Show Status');
    result.enabledToast = await toastWith('Code Llama: state:');
    await closeToasts();
    fs.writeFileSync(MACHINE_SETTINGS, settings);
    await runCommand('Code Llama: Reload Model');
    await page.waitForTimeout(500); // a reload of the cached demo model can take less than a poll
    result.reloadedLabel = await waitForStatus('ready');
  });

  await stage('a model that does not load, then bad serverArgs: the status bar and the server say why', async () => {
    const good = fs.readFileSync(MACHINE_SETTINGS, 'utf8');
    const missing = path.join(OUT, 'no-such-model');
    fs.writeFileSync(MACHINE_SETTINGS, JSON.stringify({ ...JSON.parse(good), 'codellama.model': missing }, null, 2));
    result.fallbackLabel = await waitForStatus('did not load', 30000);
    await closeToasts();
    // The model setting goes with the serverArgs change below: one restart for both.
    const machine = JSON.parse(good);
    machine['codellama.serverArgs'] = [...machine['codellama.serverArgs'], '--no-such-flag'];
    fs.writeFileSync(MACHINE_SETTINGS, JSON.stringify(machine, null, 2));
    result.badArgsToast = await toastWith('no-such-flag');
    // Its "Open Settings" shows the settings to fix, in code-server on the Remote tab: the User tab of a remote window
    // lists no machine-overridable setting ("No Settings Found").
    await page.locator('.notifications-toasts .monaco-button', { hasText: 'Open Settings' }).first().click();
    const labels = () => page.locator('.settings-editor .setting-item-label').allInnerTexts();
    result.badArgsSettings = await waitFor('Server Args in the Settings editor', async () => {
      const shown = await labels();
      return shown.includes('Server Args') && shown;
    }, 10000).catch(labels);
    await page.locator('.tabs-container .tab.active .codicon-close').click(); // the Settings editor
    result.badArgsLabel = await waitForStatus('not running');
    // A click on the item restarts a server that is not running (the server's own commands went with it).
    await closeToasts();
    await page.locator(STATUS_ITEM).click();
    result.badArgsRestartToast = await toastWith('no-such-flag');
    fs.writeFileSync(MACHINE_SETTINGS, good);
    await waitForStatus('ready');
  });

  await stage('a crashed server is restarted, or says why it cannot be', async () => {
    await closeToasts();
    // Completions turned off stay off in the server that replaces the crashed one.
    await runCommand('Code Llama: Toggle Completions');
    await waitForStatus('completions off');
    let from = await page.evaluate(() => window.codellamaStatusLabels.length);
    killServer();
    const settled = (l) => l.includes('ready') || l.includes('completions off');
    await waitFor('the restarted server to have loaded', async () => (await labelsSince(from)).some(settled), 90000);
    await page.waitForTimeout(1000); // a label that would follow the first settled one
    result.crashLabels = await labelsSince(from);
    result.crashToasts = await toasts();
    await runCommand('Code Llama: Toggle Completions');
    await waitForStatus('ready (click');
    fs.writeFileSync(BROKEN, '');
    killServer();
    result.brokenRestartToast = await toastWith('simulated start-up failure');
    result.brokenRestartToasts = await toasts();
    fs.unlinkSync(BROKEN);
    await closeToasts();
    from = await page.evaluate(() => window.codellamaStatusLabels.length);
    await page.locator(STATUS_ITEM).click(); // restarts it
    await waitFor('the server ready again', async () => (await labelsSince(from)).some((l) => l.includes('ready')), 90000);
  });

  await stage('a model that cannot fill in the middle: the status bar warns', async () => {
    const good = fs.readFileSync(MACHINE_SETTINGS, 'utf8');
    const machine = JSON.parse(good);
    machine['codellama.serverArgs'] = ['--model', PLAIN_MODEL];
    fs.writeFileSync(MACHINE_SETTINGS, JSON.stringify(machine, null, 2));
    result.noInfillingLabel = await waitForStatus('has no infilling pieces', 90000);
    await closeToasts();
    fs.writeFileSync(MACHINE_SETTINGS, good);
    await waitForStatus('ready', 90000);
  });

  await stage('completions as you type too slow: the status bar warns, then recovers', async () => {
    const good = fs.readFileSync(MACHINE_SETTINGS, 'utf8');
    const machine = JSON.parse(good);
    // A new serverArgs restarts the server: the slow one, with a budget shorter than its 1.5 s per prompt chunk.
    fs.writeFileSync(SLOW, '');
    machine['codellama.serverArgs'] = [...machine['codellama.serverArgs'], '--log-level', 'DEBUG'];
    machine['codellama.timeBudgetMs'] = 800;
    const restarted = async (from) =>
      waitFor('the restarted server to have loaded', async () => (await labelsSince(from)).some((l) => l.includes('ready (click')), 90000);
    let from = await page.evaluate(() => window.codellamaStatusLabels.length);
    fs.writeFileSync(MACHINE_SETTINGS, JSON.stringify(machine, null, 2));
    await restarted(from);
    await closeToasts();
    fs.writeFileSync(SLOW_ARM, ''); // after the load: its warm-up is a prompt pass too
    await quickOpen(SAMPLE); // the editor of the file, focused (the notebook's are open too)
    await goToLineStarting('def volume(x, y, z)');
    await page.keyboard.press('Control+End');
    // One key at a time, each request left to end at its budget: a keystroke while one runs would cancel it
    // (a cancelled request is no miss). At the end of the file, never inside a word.
    const typed = 'total = 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9';
    let count = 0;
    const typeUntil = async (word, seconds) => {
      for (; count < typed.length; count++) {
        if ((await statusLabel()).includes(word)) return true;
        await page.keyboard.type(typed[count]);
        await page.waitForTimeout(seconds * 1000);
      }
      return (await statusLabel()).includes(word);
    };
    if (!(await typeUntil('too slow', 2.5))) throw new Error(`no "too slow" after ${count} keys: ${await statusLabel()}`);
    result.slowLabel = await statusLabel();
    result.slowToast = await toastWith('ran out of their');
    fs.unlinkSync(SLOW_ARM); // fast again: the next completion as you type comes in time
    if (!(await typeUntil('ready (click', 1.5))) throw new Error(`still slow after ${count} keys: ${await statusLabel()}`);
    result.recoveredLabel = await statusLabel();
    await page.keyboard.press('Escape');
    for (let i = 0; i < count; i++) await page.keyboard.press('Backspace');
    await saveAndRead();
    fs.unlinkSync(SLOW);
    from = await page.evaluate(() => window.codellamaStatusLabels.length);
    fs.writeFileSync(MACHINE_SETTINGS, good);
    await restarted(from);
    await closeToasts();
  });

  await stage('completion list when ghost text is off', async () => {
    const settings = JSON.parse(fs.readFileSync(USER_SETTINGS, 'utf8'));
    // Word-based items would fill the list before the model's (it only has the model's to show).
    const off = { 'editor.inlineSuggest.enabled': false, 'editor.wordBasedSuggestions': 'off' };
    fs.writeFileSync(USER_SETTINGS, JSON.stringify({ ...settings, ...off }, null, 2));
    // A fresh window reads the settings for certain (a running one notices the file at its own pace).
    await runCommand('Developer: Reload Window');
    await page.waitForTimeout(2000);
    await waitForStatus('ready', 120000);
    await page.locator('.monaco-editor .view-lines').click();
    const row = await goToLineStarting('def volume(x, y, z)');
    await page.keyboard.type(':');
    await waitFor('the typed colon in the file', async () => (await fileLines())[row] === 'def volume(x, y, z):', 5000);
    await page.keyboard.press('Control+Space');
    const rows = page.locator('.suggest-widget .monaco-list-row');
    await waitFor('the completion list', async () => (await rows.count()) > 0, 30000).catch(async (error) => {
      const said = await page.locator('.suggest-widget .message').allTextContents().catch(() => []);
      throw new Error(`${error.message} (the suggest widget says ${JSON.stringify(said)})`);
    });
    result.completionItems = await rows.allTextContents();
    result.ghostWhileOff = await ghostShown();
    await page.keyboard.press('Escape');
  });
}

(async () => {
  const browser = await chromium.launch({
    executablePath: env('CODELLAMA_CHROMIUM'),
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'], // in a fresh, empty profile
  });
  try {
    page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    await page.addInitScript(recordStatusLabels, STATUS_ITEM);
    await main();
    delete result.current;
  } catch (error) {
    result.error = `${result.current}: ${error.stack || error}`;
    await page?.screenshot({ path: path.join(OUT, 'failure.png') }).catch(() => undefined);
  } finally {
    fs.writeFileSync(path.join(OUT, 'result.json'), JSON.stringify(result, null, 2));
    await browser.close();
  }
})();
