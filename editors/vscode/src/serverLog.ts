/**
 * The server's stderr: logged to the output channel at the level the server
 * wrote it with, and its last lines kept to say why a server stopped.
 */
import * as readline from 'readline';
import * as stream from 'stream';
import * as vscode from 'vscode';

/** The server logs `<date> <time> LEVEL logger: message` (lsp_server/cli.py). */
const LEVEL = /^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) /;
const KEPT_LINES = 20;

export class ServerLog {
  private readonly lines: string[] = [];
  private closed: Promise<void> = Promise.resolve();

  /** For `stdioOptions.stderr` (and stdout, which carries no protocol over stdio). */
  follow(input: stream.Readable, output: vscode.LogOutputChannel): void {
    this.closed = new Promise((resolve) => input.once('close', resolve));
    readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on('line', (line) => {
      this.lines.push(line);
      this.lines.splice(0, this.lines.length - KEPT_LINES);
      switch (LEVEL.exec(line)?.[1]) {
        case 'DEBUG':
          return output.debug(line);
        case 'INFO':
          return output.info(line);
        case 'WARNING':
          return output.warn(line);
        default: // ERROR, CRITICAL, and what Python prints itself: tracebacks, usage errors
          return output.error(line);
      }
    });
  }

  /** The last line the server wrote before exiting (its error, in practice), once its stderr has closed. */
  async lastWords(timeoutMs = 2000): Promise<string | undefined> {
    await Promise.race([this.closed, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
    return [...this.lines].reverse().find((line) => line.trim() !== '')?.trim();
  }
}
