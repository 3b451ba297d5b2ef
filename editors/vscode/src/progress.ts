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
  /** Ends the progress of each load that has begun and not ended. */
  private readonly active = new Set<() => void>();

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

  /** The client stopped (or its server died): loads under way will never end, so end their progress here. */
  clear(): void {
    for (const end of [...this.active]) {
      end();
    }
  }

  private track(token: string | number): void {
    let finish: (() => void) | undefined;
    let reporter: vscode.Progress<{ message?: string; increment?: number }> | undefined;
    let lastPercentage = 0;
    let began = false;
    let ended = false;
    const end = (): void => {
      ended = true;
      this.active.delete(end);
      subscription.dispose();
      finish?.();
      if (began) {
        this.statusBar.progressEnded();
      }
    };
    this.active.add(end);
    const subscription = this.client.onProgress(WorkDoneProgress.type, token, (value) => {
      switch (value.kind) {
        case 'begin':
          began = true;
          this.statusBar.progressBegan();
          void vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: value.title }, (progress) => {
            reporter = progress;
            progress.report({ message: value.message });
            return ended ? Promise.resolve() : new Promise<void>((resolve) => (finish = resolve));
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
          end();
          this.onLoaded();
          break;
      }
    });
  }
}
