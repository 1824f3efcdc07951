/**
 * Progress on stderr: on a terminal a bar (or a counter) redrawn in place; otherwise plain
 * lines, one per change, so logs of scripts stay readable. stdout is left to the result.
 */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface Progress {
  /** `done` of `total` (null: not known yet), and a word of state such as RUNNING */
  update(done: number, total: number | null, note?: string): void;
  /** leaves the terminal line as it stands and moves on */
  finish(): void;
}

const BAR_WIDTH = 30;

export function bar(done: number, total: number | null, width = BAR_WIDTH): string {
  if (total === null || total <= 0) return `[${'·'.repeat(width)}]`;
  const filled = Math.min(width, Math.round((done / total) * width));
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
}

function percent(done: number, total: number | null): string {
  if (total === null) return '';
  if (total <= 0) return ' 100%';
  return ` ${Math.min(100, Math.floor((done / total) * 100))}%`;
}

/**
 * A progress display of `label` (e.g. "replay 42", "put"). `unit` names what is counted.
 * With `withBar` false a terminal shows a counter only (totals unknown up front, as for put);
 * with `ttyOnly` nothing is shown when the stream is not a terminal.
 */
export function createProgress(label: string, unit: string, stream: ProgressStream = process.stderr, withBar = true, ttyOnly = false): Progress {
  const tty = stream.isTTY === true;
  if (ttyOnly && !tty) return { update: () => {}, finish: () => {} };
  let drawn = false;
  let lastLine = '';
  let lastDraw = 0;
  const line = (done: number, total: number | null, note?: string) =>
    `${label}: ${note ? `${note} ` : ''}${done}${total === null ? '' : `/${total}`} ${unit}${percent(done, total)}`;
  return {
    update(done, total, note) {
      if (tty) {
        const now = Date.now();
        if (drawn && now - lastDraw < 80 && (total === null || done < total)) return;
        lastDraw = now;
        const text = withBar
          ? `${label} ${bar(done, total)} ${done}${total === null ? '' : `/${total}`} ${unit}${percent(done, total)}${note ? ` ${note}` : ''}`
          : line(done, total, note);
        const width = stream.columns ?? 0;
        stream.write(`\r\x1b[2K${width > 0 ? text.slice(0, width - 1) : text}`);
        drawn = true;
        return;
      }
      const text = line(done, total, note);
      if (text !== lastLine) stream.write(`${text}\n`);
      lastLine = text;
    },
    finish() {
      if (tty && drawn) stream.write('\n');
      drawn = false;
    },
  };
}
