/**
 * Which `codellama.*` settings reach the server, and how.
 *
 * Only the settings the user set are sent: a default sent explicitly would
 * override the same flag given in `codellama.serverArgs` (`--model`, `--quant`…).
 * Precedence is therefore: a setting set in VS Code, then a `serverArgs` flag,
 * then the server's default.
 */
import * as vscode from 'vscode';

import { expandHome } from './paths';

export const SECTION = 'codellama';

/** Read by the extension (`trace.server`: by vscode-languageclient); never sent to the server. */
const CLIENT_ONLY = new Set(['serverPath', 'serverArgs', 'trace']);

/** Settings that a `serverArgs` flag can also set (`--model`, `--device`, …, `--remote-timeout-ms`). */
const FLAG_SETTINGS = new Set([
  'model', 'device', 'dtype', 'quant', 'kernel', 'ngramCache', 'contextLength', 'backend', 'remoteUrl',
  'remoteTimeoutMs',
]);

export interface ServerCommand {
  command: string;
  args: string[];
}

/** `<serverPath> serve <serverArgs…>` (vscode-languageclient appends `--stdio`), `~` in serverPath expanded. */
export function serverCommand(): ServerCommand {
  const config = vscode.workspace.getConfiguration(SECTION);
  return {
    command: expandHome(config.get<string>('serverPath') || 'codellama-lsp'),
    args: ['serve', ...config.get<string[]>('serverArgs', [])],
  };
}

/**
 * Settings whose empty value means "not set": `model` is a plain string, so that the Settings editor shows a text
 * box for it (it has none for a string-or-null), and emptying that box gives the `--model` flag back its say.
 * The server would take an empty model for the demo model, whatever the flag.
 */
const UNSET_WHEN_EMPTY = new Set(['model']);

/** The server settings the user set in any scope, with their effective values (camelCase keys). */
export function userSettings(): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (typeof value === 'function' || CLIENT_ONLY.has(key) || !isSet(config.inspect(key))) {
      continue;
    }
    if (UNSET_WHEN_EMPTY.has(key) && typeof value === 'string' && value.trim() === '') {
      continue;
    }
    settings[key] = value;
  }
  return settings;
}

function isSet(values: ReturnType<vscode.WorkspaceConfiguration['inspect']>): boolean {
  if (!values) {
    return false;
  }
  // In a remote window (code-server, SSH…) the remote machine's settings are part of globalValue.
  return [
    values.globalValue,
    values.workspaceValue,
    values.workspaceFolderValue,
    values.globalLanguageValue,
    values.workspaceLanguageValue,
    values.workspaceFolderLanguageValue,
  ].some((value) => value !== undefined);
}

/** What to tell the server after a configuration change. */
export type SettingsUpdate = { kind: 'send'; settings: Record<string, unknown> } | { kind: 'restart' } | { kind: 'none' };

/**
 * Remembers what the server was given, so that a change sends only the
 * difference and a setting the user removes goes back where it came from:
 * its default, or, for a setting a `serverArgs` flag can set, a restart so
 * that the flag applies again.
 */
export class SettingsSync {
  private sent: Record<string, unknown> = {};

  /** A new server starts from what the user set now (it asks for that itself). */
  reset(): void {
    this.sent = userSettings();
  }

  update(): SettingsUpdate {
    const now = userSettings();
    const removed = Object.keys(this.sent).filter((key) => !(key in now));
    if (removed.some((key) => FLAG_SETTINGS.has(key))) {
      return { kind: 'restart' };
    }
    const config = vscode.workspace.getConfiguration(SECTION);
    const changes: Record<string, unknown> = {};
    for (const key of removed) {
      changes[key] = config.inspect(key)?.defaultValue;
    }
    for (const [key, value] of Object.entries(now)) {
      if (JSON.stringify(value) !== JSON.stringify(this.sent[key])) {
        changes[key] = value;
      }
    }
    this.sent = now;
    return Object.keys(changes).length > 0 ? { kind: 'send', settings: changes } : { kind: 'none' };
  }
}
