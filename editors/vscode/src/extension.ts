/**
 * VS Code client for codellama-lsp.
 *
 * The language server does all of the work (model, prompting, caching); this
 * extension only starts it over stdio, forwards the `codellama.*` settings,
 * and adds a little UI: a status bar item and friendlier command handling.
 *
 * Inline completions need no code here: vscode-languageclient 9 implements
 * LSP 3.18 `textDocument/inlineCompletion` natively (InlineCompletionItemFeature)
 * and registers a `vscode.languages.registerInlineCompletionItemProvider` as
 * soon as the server announces `inlineCompletionProvider`, including position
 * and range conversion and `$/cancelRequest` when VS Code cancels the request.
 */
import * as vscode from 'vscode';
import {
  ExecuteCommandSignature,
  LanguageClient,
  LanguageClientOptions,
  Middleware,
  ServerOptions,
  State,
  StaticFeature,
  TransportKind,
  WorkDoneProgress,
  WorkDoneProgressBegin,
  WorkDoneProgressCreateParams,
  WorkDoneProgressCreateRequest,
  WorkDoneProgressReport,
} from 'vscode-languageclient/node';

const SECTION = 'codellama';

/** Settings consumed by the extension itself; never sent to the server. */
const CLIENT_ONLY_SETTINGS = new Set(['serverPath', 'serverArgs']);

/** Commands implemented by the server (workspace/executeCommand). */
const CMD_STATUS = 'codellama.status';
const CMD_RELOAD = 'codellama.reloadModel';
const CMD_TOGGLE = 'codellama.toggle';
const CMD_DOCSTRING = 'codellama.generateDocstring';

type UiState = 'starting' | 'loading' | 'ready' | 'off' | 'failed' | 'error';

let client: LanguageClient | undefined;
let statusBar: vscode.StatusBarItem;
let output: vscode.OutputChannel;

/** Number of server-initiated work-done progresses currently running. */
let activeProgress = 0;
/** Last value of the server's `enabled` flag we know of. */
let serverEnabled = true;
/** Last model `state` reported by `codellama.status`: idle | loading | ready | failed. */
let modelState: string | undefined;
let modelError: string | undefined;
let clientState: 'starting' | 'running' | 'stopped' = 'starting';

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel('Code Llama');
  statusBar = vscode.window.createStatusBarItem('codellama.status', vscode.StatusBarAlignment.Right, 100);
  statusBar.name = 'Code Llama';
  statusBar.command = CMD_STATUS;
  context.subscriptions.push(output, statusBar);
  serverEnabled = vscode.workspace.getConfiguration(SECTION).get<boolean>('enabled', true);
  render();
  statusBar.show();

  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (
        event.affectsConfiguration(`${SECTION}.serverPath`) ||
        event.affectsConfiguration(`${SECTION}.serverArgs`)
      ) {
        output.appendLine('Server command changed; restarting the language server.');
        await stopClient();
        await startClient(context);
      } else if (event.affectsConfiguration(`${SECTION}.enabled`)) {
        // The server receives the change through workspace/didChangeConfiguration.
        serverEnabled = vscode.workspace.getConfiguration(SECTION).get<boolean>('enabled', true);
        render();
      }
    }),
    { dispose: () => void stopClient() },
  );

  // Awaited on purpose: the commands of the server are registered by the
  // client during start-up, so a command that activated the extension
  // (e.g. from the palette) only runs once they exist.
  await startClient(context);
}

export function deactivate(): Thenable<void> | undefined {
  return stopClient();
}

// ---------------------------------------------------------------------------
// Client life cycle
// ---------------------------------------------------------------------------

function serverOptions(): ServerOptions {
  const config = vscode.workspace.getConfiguration(SECTION);
  const command = config.get<string>('serverPath', 'codellama-lsp') || 'codellama-lsp';
  const extraArgs = config.get<string[]>('serverArgs', []);
  const executable = {
    command,
    args: ['serve', ...extraArgs],
    transport: TransportKind.stdio,
  };
  return { run: executable, debug: executable };
}

/** The `codellama` settings minus the client-only ones, in the server's camelCase keys. */
function serverSettings(): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (typeof value === 'function' || CLIENT_ONLY_SETTINGS.has(key)) {
      continue;
    }
    settings[key] = value;
  }
  return settings;
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  activeProgress = 0;
  modelState = undefined;
  modelError = undefined;
  clientState = 'starting';
  render();

  const clientOptions: LanguageClientOptions = {
    // Every text document; the server filters with `codellama.disabledLanguages`.
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    synchronize: { configurationSection: SECTION },
    initializationOptions: () => ({ [SECTION]: serverSettings() }),
    outputChannel: output,
    middleware: buildMiddleware(),
  };

  const newClient = new LanguageClient('codellama', 'Code Llama', serverOptions(), clientOptions);
  newClient.registerFeature(new LoadingProgressFeature(newClient));
  context.subscriptions.push(
    newClient.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        clientState = 'running';
      } else if (event.newState === State.Stopped) {
        clientState = 'stopped';
        activeProgress = 0;
      } else {
        clientState = 'starting';
      }
      render();
    }),
  );
  client = newClient;

  try {
    await newClient.start();
  } catch (error) {
    clientState = 'stopped';
    render();
    const message = error instanceof Error ? error.message : String(error);
    output.appendLine(`Failed to start the language server: ${message}`);
    void vscode.window
      .showErrorMessage(
        `Code Llama: could not start "${serverOptionsCommand()}" (${message}). ` +
          'Install codellama-lsp or set "codellama.serverPath".',
        'Open Settings',
      )
      .then((choice) => {
        if (choice) {
          void vscode.commands.executeCommand('workbench.action.openSettings', 'codellama.serverPath');
        }
      });
    return;
  }
  // Covers servers that finished loading before our progress handler saw anything.
  void refreshStatus();
}

function serverOptionsCommand(): string {
  return vscode.workspace.getConfiguration(SECTION).get<string>('serverPath', 'codellama-lsp');
}

async function stopClient(): Promise<void> {
  const current = client;
  client = undefined;
  if (current) {
    try {
      await current.stop();
    } catch {
      // Already dead; nothing to clean up.
    }
  }
}

// ---------------------------------------------------------------------------
// Middleware: command UX and suppression of the completion fallback
// ---------------------------------------------------------------------------

function buildMiddleware(): Middleware {
  return {
    // The server also offers the same suggestion as a plain completion item for
    // editors without inline completion. VS Code renders inline completions, so
    // asking for both would run the model twice and show a duplicate popup.
    provideCompletionItem: () => undefined,

    // vscode-languageclient registers the server's commands (codellama.*) as VS
    // Code commands itself; this hook adds argument defaults and result display.
    executeCommand: async (command: string, args: unknown[], next: ExecuteCommandSignature) => {
      switch (command) {
        case CMD_STATUS: {
          const status = await next(command, args);
          applyStatus(status);
          if (args.length === 0) {
            void showStatus(status);
          }
          return status;
        }
        case CMD_TOGGLE: {
          const result = await next(command, args);
          const enabled = readEnabled(result);
          if (enabled !== undefined) {
            serverEnabled = enabled;
            render();
            void vscode.window.setStatusBarMessage(
              `Code Llama completions ${enabled ? 'enabled' : 'disabled'}`,
              3000,
            );
          }
          return result;
        }
        case CMD_RELOAD: {
          modelState = 'loading';
          render();
          const result = await next(command, args);
          // The server answers with its status once the new model is loaded (or failed).
          if (isRecord(result) && typeof result.state === 'string') {
            applyStatus(result);
          } else {
            void refreshStatus();
          }
          return result;
        }
        case CMD_DOCSTRING: {
          const fullArgs = args.length > 0 ? args : cursorArguments();
          if (!fullArgs) {
            void vscode.window.showWarningMessage('Code Llama: open a file and place the cursor in a function first.');
            return undefined;
          }
          // The server edits the document through workspace/applyEdit.
          return vscode.window.withProgress(
            { location: vscode.ProgressLocation.Window, title: 'Code Llama: generating docstring' },
            () => next(command, fullArgs),
          );
        }
        default:
          return next(command, args);
      }
    },
  };
}

/** `[uri, {line, character}]` for the active editor's cursor (UTF-16 columns, as LSP expects). */
function cursorArguments(): unknown[] | undefined {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    return undefined;
  }
  const position = editor.selection.active;
  return [editor.document.uri.toString(), { line: position.line, character: position.character }];
}

// ---------------------------------------------------------------------------
// Status bar
// ---------------------------------------------------------------------------

/**
 * Tracks the server's `$/progress` (model loading) to drive the status bar.
 *
 * Registered after the built-in features, so its `window/workDoneProgress/create`
 * handler replaces the generic one; it shows the same window progress itself.
 */
class LoadingProgressFeature implements StaticFeature {
  constructor(private readonly languageClient: LanguageClient) {}

  fillClientCapabilities(): void {
    // `window.workDoneProgress` is already announced by the built-in ProgressFeature.
  }

  getState() {
    return { kind: 'static' as const };
  }

  initialize(): void {
    this.languageClient.onRequest(WorkDoneProgressCreateRequest.type, (params: WorkDoneProgressCreateParams) =>
      this.track(params.token),
    );
  }

  clear(): void {
    activeProgress = 0;
  }

  private track(token: string | number): void {
    let finish: (() => void) | undefined;
    let reporter: vscode.Progress<{ message?: string; increment?: number }> | undefined;
    let lastPercentage = 0;
    const subscription = this.languageClient.onProgress(WorkDoneProgress.type, token, (value) => {
      switch (value.kind) {
        case 'begin': {
          activeProgress += 1;
          render();
          const begin: WorkDoneProgressBegin = value;
          void vscode.window.withProgress(
            { location: vscode.ProgressLocation.Window, title: begin.title },
            (progress) =>
              new Promise<void>((resolve) => {
                reporter = progress;
                finish = resolve;
                progress.report({ message: begin.message });
              }),
          );
          break;
        }
        case 'report': {
          const report: WorkDoneProgressReport = value;
          let increment: number | undefined;
          if (report.percentage !== undefined) {
            increment = Math.max(0, report.percentage - lastPercentage);
            lastPercentage = Math.max(lastPercentage, report.percentage);
          }
          reporter?.report({ message: report.message, increment });
          break;
        }
        case 'end':
          activeProgress = Math.max(0, activeProgress - 1);
          finish?.();
          subscription.dispose();
          void refreshStatus();
          break;
      }
    });
  }
}

function currentUiState(): UiState {
  if (clientState === 'stopped') {
    return 'error';
  }
  if (clientState === 'starting') {
    return 'starting';
  }
  if (activeProgress > 0 || modelState === 'loading' || modelState === 'idle') {
    return 'loading';
  }
  if (modelState === 'failed') {
    return 'failed';
  }
  return serverEnabled ? 'ready' : 'off';
}

function render(): void {
  const state = currentUiState();
  statusBar.backgroundColor = undefined;
  switch (state) {
    case 'starting':
    case 'loading':
      statusBar.text = '$(sync~spin) Code Llama';
      statusBar.tooltip = state === 'starting' ? 'Code Llama: starting the server…' : 'Code Llama: loading the model…';
      break;
    case 'ready':
      statusBar.text = '$(sparkle) Code Llama';
      statusBar.tooltip = 'Code Llama: ready (click for status)';
      break;
    case 'off':
      statusBar.text = '$(circle-slash) Code Llama';
      statusBar.tooltip = 'Code Llama: completions off (click for status, "Code Llama: Toggle Completions" to enable)';
      break;
    case 'failed':
      statusBar.text = '$(warning) Code Llama';
      statusBar.tooltip = `Code Llama: the model failed to load${modelError ? `: ${modelError}` : ''} (fix "codellama.model", then run "Code Llama: Reload Model")`;
      statusBar.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
      break;
    case 'error':
      statusBar.text = '$(error) Code Llama';
      statusBar.tooltip = 'Code Llama: the server is not running (see the "Code Llama" output)';
      statusBar.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
      break;
  }
}

async function refreshStatus(): Promise<void> {
  const current = client;
  if (!current || !current.isRunning()) {
    return;
  }
  try {
    // A raw request: unlike the VS Code command, this bypasses the middleware (no popup).
    const status = await current.sendRequest('workspace/executeCommand', { command: CMD_STATUS, arguments: [] });
    applyStatus(status);
  } catch (error) {
    output.appendLine(`codellama.status failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Update the status bar from a `codellama.status` result. */
function applyStatus(status: unknown): void {
  if (!isRecord(status)) {
    return;
  }
  const enabled = readEnabled(status);
  if (enabled !== undefined) {
    serverEnabled = enabled;
  }
  if (typeof status.state === 'string') {
    modelState = status.state;
    modelError = typeof status.error === 'string' ? status.error : undefined;
    // Normally the end of the loading $/progress triggers the next refresh; poll in case we
    // never saw that progress (e.g. it began before our handler was installed).
    if ((modelState === 'loading' || modelState === 'idle') && activeProgress === 0) {
      setTimeout(() => void refreshStatus(), 2000);
    }
  }
  render();
  if (currentUiState() === 'ready' || currentUiState() === 'off') {
    statusBar.tooltip = new vscode.MarkdownString(
      ['**Code Llama**', '', ...describeStatus(status).map((line) => `- ${line}`)].join('\n'),
    );
  }
}

async function showStatus(status: unknown): Promise<void> {
  output.appendLine(`codellama.status: ${JSON.stringify(status, null, 2)}`);
  const summary = isRecord(status) ? describeStatus(status).join(' · ') : String(status);
  const toggleLabel = serverEnabled ? 'Disable' : 'Enable';
  const choice = await vscode.window.showInformationMessage(
    `Code Llama: ${summary}`,
    toggleLabel,
    'Reload Model',
    'Show Log',
  );
  if (choice === toggleLabel) {
    await vscode.commands.executeCommand(CMD_TOGGLE);
  } else if (choice === 'Reload Model') {
    await vscode.commands.executeCommand(CMD_RELOAD);
  } else if (choice === 'Show Log') {
    output.show(true);
  }
}

/** `key: value` lines for a status dict; nested objects are flattened one level. */
function describeStatus(status: Record<string, unknown>): string[] {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(status)) {
    if (isRecord(value)) {
      const inner = Object.entries(value)
        .map(([k, v]) => `${k}=${formatValue(v)}`)
        .join(', ');
      lines.push(`${key}: ${inner}`);
    } else {
      lines.push(`${key}: ${formatValue(value)}`);
    }
  }
  return lines;
}

function formatValue(value: unknown): string {
  if (typeof value === 'number' && !Number.isInteger(value)) {
    return value.toFixed(2);
  }
  if (value === null || value === undefined) {
    return '—';
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** `codellama.toggle` returns the new state: a boolean, or a dict with `enabled`. */
function readEnabled(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') {
    return value;
  }
  if (isRecord(value) && typeof value.enabled === 'boolean') {
    return value.enabled;
  }
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
