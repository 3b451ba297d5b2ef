/**
 * vscode-languageclient middleware: what the extension adds between VS Code
 * and the server's features and commands.
 */
import * as vscode from 'vscode';
import { ExecuteCommandSignature, Middleware } from 'vscode-languageclient/node';

import { SECTION, userSettings } from './settings';
import { CMD_RELOAD, CMD_STATUS, CMD_TOGGLE, StatusBar, describeStatus, isRecord } from './status';

export const CMD_DOCSTRING = 'codellama.generateDocstring';

export interface MiddlewareContext {
  statusBar: StatusBar;
  output: vscode.LogOutputChannel;
  /** Whether the running server offers `textDocument/inlineCompletion`. */
  serverHasInlineCompletion(): boolean;
  /** What "Toggle Completions" last turned completions to, while `codellama.enabled` has not changed since. */
  toggledEnabled(): boolean | undefined;
  onToggled(enabled: boolean): void;
}

export function buildMiddleware(context: MiddlewareContext): Middleware {
  return {
    // The server offers the same suggestion as a plain completion item for editors without
    // inline completion. Where VS Code shows ghost text, asking for both would run the model
    // twice and pop up a duplicate; where it does not (inline suggestions turned off, or a
    // server without them), the completion list is the fallback.
    provideCompletionItem: (document, position, completionContext, token, next) =>
      showsGhostText(document, context) ? undefined : next(document, position, completionContext, token),

    // The server asks for its section (workspace/configuration): answer with what the user set only, and
    // the toggle's state, so that a server started again (after a crash, or by a restart) keeps it.
    workspace: {
      configuration: async (params, token, next) => {
        const values = await next(params, token);
        if (!Array.isArray(values)) {
          return values;
        }
        return params.items.map((item, index) => (item.section === SECTION ? sectionSettings(context) : values[index]));
      },
    },

    // vscode-languageclient registers the server's commands (codellama.*) as VS Code commands;
    // this hook adds argument defaults and shows the results.
    executeCommand: (command, args, next) => runCommand(context, command, args, next),
  };
}

function sectionSettings(context: MiddlewareContext): Record<string, unknown> {
  const enabled = context.toggledEnabled();
  return enabled === undefined ? userSettings() : { ...userSettings(), enabled };
}

function showsGhostText(document: vscode.TextDocument, context: MiddlewareContext): boolean {
  const inlineSuggest = vscode.workspace.getConfiguration('editor.inlineSuggest', document);
  return context.serverHasInlineCompletion() && inlineSuggest.get<boolean>('enabled', true);
}

async function runCommand(
  context: MiddlewareContext,
  command: string,
  args: unknown[],
  next: ExecuteCommandSignature,
): Promise<unknown> {
  const { statusBar } = context;
  switch (command) {
    case CMD_STATUS: {
      const status = await next(command, args);
      statusBar.apply(status);
      if (args.length === 0) {
        void showStatus(context, status);
      }
      return status;
    }
    case CMD_TOGGLE: {
      const result = await next(command, args);
      if (isRecord(result) && typeof result.enabled === 'boolean') {
        context.onToggled(result.enabled);
        statusBar.enabled = result.enabled;
        statusBar.render();
        void vscode.window.setStatusBarMessage(`Code Llama completions ${result.enabled ? 'enabled' : 'disabled'}`, 3000);
      }
      return result;
    }
    case CMD_RELOAD: {
      statusBar.apply({ state: 'loading' });
      // The server answers with its status once the new model has loaded (or failed to).
      const status = await next(command, args);
      statusBar.apply(status);
      return status;
    }
    case CMD_DOCSTRING:
      return generateDocstring(args, next);
    default:
      return next(command, args);
  }
}

async function generateDocstring(args: unknown[], next: ExecuteCommandSignature): Promise<unknown> {
  const target = docstringTarget(args);
  if (!target) {
    void vscode.window.showWarningMessage('Code Llama: open a file and place the cursor in a function first.');
    return undefined;
  }
  // The server edits the document itself, through workspace/applyEdit.
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Window, title: 'Code Llama: generating a docstring' },
    () => next(CMD_DOCSTRING, target),
  );
  if (isRecord(result) && result.applied === false) {
    void vscode.window.showInformationMessage(`Code Llama: no docstring written (${String(result.reason)}).`);
  }
  return result;
}

/**
 * The server's `[uri, {line, character}]` for the docstring command: given as is by
 * callers that know it, else the cursor of the editor the command was run for (the
 * editor context menu passes that editor's `Uri`, the palette nothing).
 */
function docstringTarget(args: unknown[]): unknown[] | undefined {
  const [first, second] = args;
  if (typeof first === 'string' && isRecord(second) && typeof second.line === 'number') {
    return args;
  }
  const editor =
    first instanceof vscode.Uri
      ? vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === first.toString())
      : vscode.window.activeTextEditor;
  if (!editor) {
    return undefined;
  }
  // UTF-16 columns, as LSP positions count them by default.
  const { line, character } = editor.selection.active;
  return [editor.document.uri.toString(), { line, character }];
}

async function showStatus(context: MiddlewareContext, status: unknown): Promise<void> {
  context.output.info(`codellama.status: ${JSON.stringify(status)}`);
  const summary = isRecord(status) ? describeStatus(status).join(' · ') : String(status);
  const toggle = context.statusBar.enabled ? 'Disable' : 'Enable';
  const choice = await vscode.window.showInformationMessage(`Code Llama: ${summary}`, toggle, 'Reload Model', 'Show Log');
  if (choice === toggle) {
    await vscode.commands.executeCommand(CMD_TOGGLE);
  } else if (choice === 'Reload Model') {
    await vscode.commands.executeCommand(CMD_RELOAD);
  } else if (choice === 'Show Log') {
    context.output.show(true);
  }
}
