/**
 * Paths as users write them in settings. Kept apart from `vscode`, so that plain Node can load it (the tests do).
 */
import * as os from 'os';
import * as path from 'path';

/**
 * `value` with a leading `~` or `${userHome}` made the home directory (`~/venv/bin/codellama-lsp`). The server is
 * started without a shell, which would have expanded `~`: the file was reported "not found" although it exists.
 */
export function expandHome(value: string, home: string = os.homedir()): string {
  for (const lead of ['~', '${userHome}']) {
    if (value === lead) {
      return home;
    }
    if (value.startsWith(`${lead}/`) || value.startsWith(`${lead}${path.sep}`)) {
      return path.join(home, value.slice(lead.length + 1));
    }
  }
  return value;
}
