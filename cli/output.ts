/** Text output of the scripting commands: aligned tables and JSON. */

export interface Column {
  header: string;
  /** numbers read best right-aligned */
  right?: boolean;
}

const cell = (value: unknown): string => (value === null || value === undefined ? '-' : String(value));

/** An aligned plain-text table (two spaces between columns), header first. */
export function formatTable(columns: Column[], rows: unknown[][]): string {
  const text = rows.map((row) => columns.map((_, i) => cell(row[i])));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...text.map((row) => row[i]!.length)));
  const render = (cells: string[]) =>
    cells.map((c, i) => (columns[i]!.right ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [render(columns.map((c) => c.header)), ...text.map(render)].join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}
