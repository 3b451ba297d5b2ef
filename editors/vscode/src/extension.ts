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
import { CMD_STATUS, StatusBar } from './status';

let client: CodeLlamaClient | undefined;
let output: vscode.LogOutputChannel;
let statusBar: StatusBar;
const settings = new SettingsSync();

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel('Code Llama', { log: true });
  statusBar = new StatusBar(vscode.workspace.getConfiguration(SECTION).get<boolean>('enabled', true));
  context.subscriptions.push(
    output,
    statusBar,
    vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
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
  if (event.affectsConfiguration(`${SECTION}.serverPath`) || event.affectsConfiguration(`${SECTION}.serverArgs`)) {
    return restartClient('The server command changed');
  }
  const update = settings.update();
  if (update.kind === 'restart') {
    return restartClient('A model setting was removed (its serverArgs flag or default applies again)');
  }
  if (update.kind === 'send' && client?.isRunning()) {
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: update.settings } });
    if (typeof update.settings.enabled === 'boolean') {
      statusBar.enabled = update.settings.enabled;
      statusBar.render();
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
    if (!failureReported) {
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
      }),
    },
  );
  newClient.registerFeature(new LoadingProgressFeature(newClient, statusBar, () => void refreshStatus()));
  newClient.onDidChangeState((event) => {
    if (client !== newClient) {
      return; // an old client going away
    }
    if (event.newState === State.Running) {
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
  output.info(`${why}; restarting the language server.`);
  await stopClient();
  await startClient();
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
  const choice = await vscode.window.showErrorMessage(message, 'Open Settings', 'Show Log');
  if (choice === 'Open Settings') {
    await vscode.commands.executeCommand('workbench.action.openSettings', notFound ? 'codellama.serverPath' : SECTION);
  } else if (choice === 'Show Log') {
    output.show(true);
  }
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
