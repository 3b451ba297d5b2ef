/**
 * Shows the server's work-done progress (model loading) in the window and
 * tells the status bar when a load begins and ends.
 */
import * as vscode from 'vscode';
import {
  FeatureState,
  LanguageClient,
  StaticFeature,
  WorkDoneProgress,
  WorkDoneProgressCreateParams,
  WorkDoneProgressCreateRequest,
} from 'vscode-languageclient/node';

import { StatusBar } from './status';

/**
 * Registered after the built-in features, so its `window/workDoneProgress/create`
 * handler replaces the generic one; it shows the same window progress itself.
 */
export class LoadingProgressFeature implements StaticFeature {
  constructor(
    private readonly client: LanguageClient,
    private readonly statusBar: StatusBar,
    private readonly onLoaded: () => void,
  ) {}

  fillClientCapabilities(): void {
    // `window.workDoneProgress` is already announced by the built-in ProgressFeature.
  }

  getState(): FeatureState {
    return { kind: 'static' };
  }

  initialize(): void {
    this.client.onRequest(WorkDoneProgressCreateRequest.type, (params: WorkDoneProgressCreateParams) =>
      this.track(params.token),
    );
  }

  clear(): void {}

  private track(token: string | number): void {
    let finish: (() => void) | undefined;
    let reporter: vscode.Progress<{ message?: string; increment?: number }> | undefined;
    let lastPercentage = 0;
    const subscription = this.client.onProgress(WorkDoneProgress.type, token, (value) => {
      switch (value.kind) {
        case 'begin':
          this.statusBar.progressBegan();
          void vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: value.title }, (progress) => {
            reporter = progress;
            progress.report({ message: value.message });
            return new Promise<void>((resolve) => (finish = resolve));
          });
          break;
        case 'report': {
          let increment: number | undefined;
          if (value.percentage !== undefined) {
            increment = Math.max(0, value.percentage - lastPercentage);
            lastPercentage = Math.max(lastPercentage, value.percentage);
          }
          reporter?.report({ message: value.message, increment });
          break;
        }
        case 'end':
          this.statusBar.progressEnded();
          finish?.();
          subscription.dispose();
          this.onLoaded();
          break;
      }
    });
  }
}
