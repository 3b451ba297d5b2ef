/**
 * The status bar item: server and model state, driven by the client's state,
 * the server's `$/progress` (model loading) and `codellama.status` results.
 */
import * as vscode from 'vscode';

export const CMD_STATUS = 'codellama.status';
export const CMD_RELOAD = 'codellama.reloadModel';
export const CMD_TOGGLE = 'codellama.toggle';
/** The extension's own command: it exists when the server's do not (while it is not running). */
export const CMD_RESTART = 'codellama.restartServer';

type ClientState = 'starting' | 'running' | 'stopped';
type UiState = 'starting' | 'loading' | 'ready' | 'slow' | 'off' | 'failed' | 'fallback' | 'no-infilling' | 'error';

/**
 * The server's notification of a change of `too_slow` (its params: `{ too_slow: string | null }`): completions as
 * you type keep running out of their time budget (the warning it showed once), or no longer do.
 */
export const TOO_SLOW_NOTIFICATION = '$/codellama/tooSlow';

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private clientState: ClientState = 'starting';
  /** Server-initiated work-done progresses (model loads) that have begun and not ended. */
  private activeProgress = 0;
  /** The model `state` of the last `codellama.status`: idle | loading | ready | failed; unknown until asked. */
  private modelState: string | undefined;
  private modelError: string | undefined;
  /** false: the model loaded but cannot fill in the middle (Code Llama - Python), so nothing is ever suggested. */
  private infilling: boolean | undefined;
  private details: Record<string, unknown> | undefined;
  private stopReason: string | undefined;
  /** The server's `too_slow`: why completions as you type stay empty, while they do. */
  private tooSlow: string | undefined;
  enabled: boolean;

  constructor(enabled: boolean) {
    this.enabled = enabled;
    this.item = vscode.window.createStatusBarItem('codellama.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'Code Llama';
    this.render();
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }

  /** A (re)started client: nothing is known about its model yet. */
  starting(): void {
    this.clientState = 'starting';
    this.activeProgress = 0;
    this.modelState = this.modelError = this.infilling = this.details = this.stopReason = this.tooSlow = undefined;
    this.render();
  }

  running(): void {
    this.clientState = 'running';
    this.render();
  }

  stopped(reason?: string): void {
    this.clientState = 'stopped';
    this.activeProgress = 0;
    this.stopReason = reason;
    this.render();
  }

  progressBegan(): void {
    this.activeProgress += 1;
    this.render();
  }

  progressEnded(): void {
    this.activeProgress = Math.max(0, this.activeProgress - 1);
    this.render();
  }

  get progressActive(): boolean {
    return this.activeProgress > 0;
  }

  get loading(): boolean {
    return this.activeProgress > 0 || this.modelState === undefined || this.modelState === 'loading' || this.modelState === 'idle';
  }

  /** Update from a `codellama.status` result (the server's status dict). */
  apply(status: unknown): void {
    if (!isRecord(status)) {
      return;
    }
    if (typeof status.enabled === 'boolean') {
      this.enabled = status.enabled;
    }
    if (typeof status.state === 'string') {
      this.modelState = status.state;
      this.modelError = typeof status.error === 'string' ? status.error : undefined;
      this.infilling = typeof status.infilling === 'boolean' ? status.infilling : undefined;
      this.tooSlow = typeof status.too_slow === 'string' ? status.too_slow : undefined;
      this.details = status;
    }
    this.render();
  }

  /** Update from the server's TOO_SLOW_NOTIFICATION. */
  applyTooSlow(params: unknown): void {
    if (!isRecord(params)) {
      return;
    }
    this.tooSlow = typeof params.too_slow === 'string' ? params.too_slow : undefined;
    if (this.details) {
      this.details = { ...this.details, too_slow: params.too_slow ?? null }; // the tooltip's lines say the same
    }
    this.render();
  }

  private state(): UiState {
    if (this.clientState !== 'running') {
      return this.clientState === 'stopped' ? 'error' : 'starting';
    }
    if (this.loading) {
      return 'loading';
    }
    if (this.modelState === 'failed') {
      return 'failed';
    }
    if (this.infilling === false) {
      return 'no-infilling';
    }
    if (this.fallbackFrom() !== undefined) {
      return 'fallback';
    }
    if (!this.enabled) {
      return 'off';
    }
    return this.tooSlow ? 'slow' : 'ready';
  }

  render(): void {
    const item = this.item;
    item.backgroundColor = undefined;
    // The server's commands (codellama.status) exist only while it runs.
    item.command = this.clientState === 'running' ? CMD_STATUS : this.clientState === 'stopped' ? CMD_RESTART : undefined;
    switch (this.state()) {
      case 'starting':
        item.text = '$(sync~spin) Code Llama';
        item.tooltip = 'Code Llama: starting the server…';
        break;
      case 'loading':
        item.text = '$(sync~spin) Code Llama';
        item.tooltip = 'Code Llama: loading the model…';
        break;
      case 'ready':
        item.text = '$(sparkle) Code Llama';
        item.tooltip = this.detailsTooltip('ready (click for status)');
        break;
      case 'slow':
        // Not the warning background of a model that failed: completions you ask for (Alt+\) still come.
        item.text = '$(warning) Code Llama';
        item.tooltip = this.detailsTooltip(
          `completions as you type are too slow (click for status): ${this.tooSlow?.replace(/^codellama: /, '') ?? ''}`,
          'too_slow', // said above already, in full
        );
        break;
      case 'off':
        item.text = '$(circle-slash) Code Llama';
        item.tooltip = this.detailsTooltip('completions off (click for status, "Code Llama: Toggle Completions" to enable)');
        break;
      case 'failed':
        item.text = '$(warning) Code Llama';
        item.tooltip =
          `Code Llama: the model failed to load${this.modelError ? `: ${this.modelError}` : ''} ` +
          '(fix "codellama.model", then run "Code Llama: Reload Model")';
        item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        break;
      case 'fallback':
        // Completions still come, from the model loaded before: "ready" would hide that the one asked for is not it.
        item.text = '$(warning) Code Llama';
        item.tooltip = this.detailsTooltip(
          `${this.fallbackFrom()} did not load${this.modelError ? `: ${this.modelError}` : ''}; still using ` +
            `${String(this.details?.loaded)} (fix the setting, then run "Code Llama: Reload Model")`,
          'error', // said above already
        );
        item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        break;
      case 'no-infilling':
        item.text = '$(warning) Code Llama';
        item.tooltip = `Code Llama: ${this.modelError ?? 'the model cannot fill in the middle'} (choose a base or Instruct model in "codellama.model", then run "Code Llama: Reload Model")`;
        item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        break;
      case 'error':
        item.text = '$(error) Code Llama';
        item.tooltip = `Code Llama: the server is not running${this.stopReason ? `: ${this.stopReason}` : ''} (click to restart; see the "Code Llama" output)`;
        item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        break;
    }
  }

  /**
   * The model asked for, when a model is ready but it is not that one: its load (or that of a device, dtype… setting)
   * failed and the server kept, or loaded again, the model it had (`error` says why, `loaded` which it is).
   */
  private fallbackFrom(): string | undefined {
    if (this.modelState !== 'ready' || !this.details) {
      return undefined;
    }
    const { model, loaded } = this.details;
    return this.modelError !== undefined || (typeof loaded === 'string' && loaded !== model) ? String(model) : undefined;
  }

  private detailsTooltip(summary: string, omit?: string): vscode.MarkdownString | string {
    if (!this.details) {
      return `Code Llama: ${summary}`;
    }
    const details = Object.fromEntries(Object.entries(this.details).filter(([key]) => key !== omit));
    return new vscode.MarkdownString(
      [`**Code Llama**: ${summary}`, '', ...describeStatus(details).map((line) => `- ${line}`)].join('\n'),
    );
  }
}

/** `key: value` lines for a status dict; nested objects are flattened one level. */
export function describeStatus(status: Record<string, unknown>): string[] {
  return Object.entries(status).map(([key, value]) => {
    if (isRecord(value)) {
      return `${key}: ${Object.entries(value)
        .map(([k, v]) => `${k}=${formatValue(v)}`)
        .join(', ')}`;
    }
    return `${key}: ${formatValue(value)}`;
  });
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

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
