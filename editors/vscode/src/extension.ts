/**
 * VS Code client for codellama-lsp.
 *
 * The language server does all of the work (model, prompting, caching); this
 * extension starts it over stdio, gives it the `codellama.*` settings the user
 * set, and adds a little UI: a status bar item and friendlier commands.
 *
 * Inline completions need no code here: vscode-languageclient 10 implements
 * LSP 3.18 `textDocument/inlineCompletion` (InlineCompletionItemFeature) and
 * registers a VS Code inline completion provider as soon as the server
 * announces `inlineCompletionProvider`, converting positions and ranges and
 * cancelling requests VS Code no longer needs.
 */
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorHandler,
  LanguageClient,
  State,
  TransportKind,
} from 'vscode-languageclient/node';

import { buildMiddleware } from './middleware';
import { LoadingProgressFeature } from './progress';
import { ServerLog } from './serverLog';
import { SECTION, SettingsSync, serverCommand } from './settings';
import { CMD_RESTART, CMD_STATUS, CMD_TOGGLE, StatusBar, TOO_SLOW_NOTIFICATION, isRecord } from './status';

let client: CodeLlamaClient | undefined;
let output: vscode.LogOutputChannel;
let statusBar: StatusBar;
/** Bumped by each restart: a restart that a later one overtook while it waited does not start a client. */
let generation = 0;
const settings = new SettingsSync();
/**
 * What "Toggle Completions" turned completions to, until `codellama.enabled` changes: the server's state is
 * lost with its process, and a server started again (the client restarts one that crashed) is given this.
 */
let toggledEnabled: boolean | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel('Code Llama', { log: true });
  statusBar = new StatusBar(vscode.workspace.getConfiguration(SECTION).get<boolean>('enabled', true));
  context.subscriptions.push(
    output,
    statusBar,
    vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
    // Ours, not the server's: it exists while the server does not run (its commands are registered only then).
    vscode.commands.registerCommand(CMD_RESTART, () => restartClient('Restart requested')),
    { dispose: () => void stopClient() },
  );
  // Awaited on purpose: the client registers the server's commands while it starts, so a
  // command that activated the extension (e.g. from the palette) only runs once they exist.
  await startClient();
}

export function deactivate(): Thenable<void> | undefined {
  return stopClient();
}

async function onConfigurationChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
  if (!event.affectsConfiguration(SECTION)) {
    return;
  }
  if (event.affectsConfiguration(`${SECTION}.enabled`)) {
    toggledEnabled = undefined; // the setting rules again
  }
  if (event.affectsConfiguration(`${SECTION}.serverPath`) || event.affectsConfiguration(`${SECTION}.serverArgs`)) {
    return restartClient('The server command changed');
  }
  const update = settings.update();
  if (update.kind === 'restart') {
    return restartClient('A model setting was removed (its serverArgs flag or default applies again)');
  }
  if (update.kind === 'send' && client?.isRunning()) {
    const current = client;
    await current.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: update.settings } });
    if (typeof update.settings.enabled === 'boolean') {
      // The server applies `enabled` only when it differs from its previous setting, so a value that
      // undoes "Toggle Completions" would be lost: make its runtime state follow the setting.
      await applyEnabled(current, update.settings.enabled);
    }
  }
}

// ---------------------------------------------------------------------------
// Client life cycle
// ---------------------------------------------------------------------------

/**
 * A client that leaves start-up failures to the extension, which reports them with the
 * server's own words; the library's generic toast for them ("couldn't create connection
 * to server") is only logged.
 */
class CodeLlamaClient extends LanguageClient {
  /** Its server has initialized (false again while the client restarts one that crashed). */
  started = false;

  override error(message: string, data?: unknown, showNotification?: boolean | 'force'): void {
    super.error(message, data, this.started ? showNotification : false);
  }
}

async function startClient(): Promise<void> {
  statusBar.starting();
  settings.reset();
  const server = serverCommand();
  const serverLog = new ServerLog();
  const follow = serverLog.follow.bind(serverLog);
  let defaultErrorHandler: ErrorHandler | undefined;
  let failureReported = false;
  const reportFailure = async (launchError?: string): Promise<void> => {
    if (!failureReported && client === newClient) { // a client we replaced or stopped: nothing to report
      failureReported = true;
      const reason = (await serverLog.lastWords()) ?? launchError;
      void reportStopped(server.command, reason, launchError?.includes('ENOENT'));
    }
  };

  const newClient: CodeLlamaClient = new CodeLlamaClient(
    'codellama',
    'Code Llama',
    { command: server.command, args: server.args, transport: TransportKind.stdio },
    {
      // Every text document and notebook cell; the server filters with `codellama.disabledLanguages`.
      // Notebooks are synced as notebooks (the server asks for it), so a cell is completed with the
      // code cells around it.
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }, { scheme: 'vscode-notebook-cell' }],
      // No initializationOptions: the server asks for its settings (workspace/configuration, answered
      // by the middleware) right after starting, and would otherwise check and warn about them twice.
      outputChannel: output,
      stdioOptions: { stdout: follow, stderr: follow },
      initializationFailedHandler: () => false,
      errorHandler: {
        error: (error, message, count) =>
          (defaultErrorHandler ??= newClient.createDefaultErrorHandler()).error(error, message, count),
        closed: async () => {
          if (client !== newClient) {
            return { action: CloseAction.DoNotRestart, handled: true }; // replaced or stopped: never restarted
          }
          if (!newClient.started) {
            void reportFailure();
            return { action: CloseAction.DoNotRestart, handled: true };
          }
          // A crash after start-up: restarted a few times, then reported.
          const result = await (defaultErrorHandler ??= newClient.createDefaultErrorHandler()).closed();
          if (result.action === CloseAction.DoNotRestart) {
            void reportFailure();
          }
          return { ...result, handled: true };
        },
      },
      middleware: buildMiddleware({
        statusBar,
        output,
        serverHasInlineCompletion: () => Boolean(newClient.initializeResult?.capabilities.inlineCompletionProvider),
        toggledEnabled: () => toggledEnabled,
        onToggled: (enabled) => {
          toggledEnabled = enabled;
        },
      }),
    },
  );
  newClient.registerFeature(new LoadingProgressFeature(newClient, statusBar, () => void refreshStatus()));
  // The server says when completions as you type start or stop running out of time: the status bar follows,
  // without asking for the status at every keystroke (its warning popup alone is gone after a while).
  newClient.onNotification(TOO_SLOW_NOTIFICATION, (params: unknown) => {
    if (client === newClient) {
      statusBar.applyTooSlow(params);
    }
  });
  newClient.onDidChangeState((event) => {
    if (client !== newClient) {
      return; // an old client going away
    }
    void vscode.commands.executeCommand('setContext', 'codellama.serverRunning', event.newState === State.Running);
    if (event.newState === State.Starting) {
      // Also when the client restarts a server that crashed: a new process, whose start-up failure is
      // reported like the first one's (not with the library's "couldn't create connection" toast), and
      // whose model is not loaded yet (the status bar must not go on saying "ready").
      newClient.started = false;
      statusBar.starting();
    } else if (event.newState === State.Running) {
      newClient.started = true;
      statusBar.running();
    } else if (event.newState === State.Stopped || event.newState === State.StartFailed) {
      statusBar.stopped();
    }
  });
  client = newClient;

  try {
    await newClient.start();
  } catch (error) {
    return reportFailure(error instanceof Error ? error.message : String(error));
  }
  if (client !== newClient) {
    // Replaced while it started (a client still starting cannot be stopped): stop it now that it can be,
    // or it would go on running unseen, holding the codellama.* commands its successor needs.
    await newClient.stop().catch(() => undefined);
    return;
  }
  if (newClient.isRunning()) {
    newClient.started = true;
    // Covers a model that finished loading before our progress handler saw anything.
    void refreshStatus();
  }
}

async function stopClient(): Promise<void> {
  const current = client;
  client = undefined;
  if (current?.needsStop()) {
    await current.stop().catch(() => undefined); // already dead: nothing to clean up
  }
}

async function restartClient(why: string): Promise<void> {
  const mine = ++generation;
  output.info(`${why}; restarting the language server.`);
  await stopClient();
  if (mine === generation) { // else a later restart, which found no client to stop, has started one already
    await startClient();
  }
}

/** Bring the server's runtime on/off state (which "Toggle Completions" flips) in line with `codellama.enabled`. */
async function applyEnabled(current: LanguageClient, enabled: boolean): Promise<void> {
  try {
    const status = await current.sendRequest('workspace/executeCommand', { command: CMD_STATUS, arguments: [] });
    if (isRecord(status) && status.enabled !== enabled) {
      await current.sendRequest('workspace/executeCommand', { command: CMD_TOGGLE, arguments: [] });
    }
  } catch (error) {
    output.warn(`codellama.enabled: ${error instanceof Error ? error.message : String(error)}`);
  }
  await refreshStatus();
}

async function reportStopped(command: string, reason: string | undefined, notFound = false): Promise<void> {
  if (client?.isRunning()) {
    return; // restarted meanwhile
  }
  statusBar.stopped(reason);
  const message = notFound
    ? `Code Llama: "${command}" was not found. Install codellama-lsp, or set "codellama.serverPath" to its full path.`
    : `Code Llama: the server stopped${reason ? `: ${reason}` : ''}. See the "Code Llama" output.`;
  output.error(message);
  const choice = await vscode.window.showErrorMessage(message, 'Restart', 'Open Settings', 'Show Log');
  if (choice === 'Restart') {
    await restartClient('Restart requested');
  } else if (choice === 'Open Settings') {
    // Not found: the path. Else the server's command too (a bad flag in serverArgs), and the model it was to load.
    await openSettings(notFound ? `${SECTION}.serverPath` : `${SECTION}.server`);
  } else if (choice === 'Show Log') {
    output.show(true);
  }
}

/**
 * The Settings editor, searched for `query`: in a remote window (code-server, SSH, WSL, a container) on its Remote
 * tab, since the User tab leaves out machine-overridable settings there (serverPath, serverArgs, model): it said
 * "No Settings Found" for the very setting the error asked to fix.
 */
function openSettings(query: string): Thenable<unknown> {
  const command = vscode.env.remoteName ? 'workbench.action.openRemoteSettings' : 'workbench.action.openSettings';
  return vscode.commands.executeCommand(command, { query });
}

/** Ask the server for its status (bypassing the command middleware: no popup) and update the status bar. */
async function refreshStatus(): Promise<void> {
  const current = client;
  if (!current?.isRunning()) {
    return;
  }
  try {
    statusBar.apply(await current.sendRequest('workspace/executeCommand', { command: CMD_STATUS, arguments: [] }));
  } catch (error) {
    output.warn(`codellama.status failed: ${error instanceof Error ? error.message : String(error)}`);
    return;
  }
  // The end of the loading $/progress normally triggers the next refresh; poll in case it
  // began before our handler was installed.
  if (statusBar.loading && !statusBar.progressActive) {
    setTimeout(() => void refreshStatus(), 1000);
  }
}
