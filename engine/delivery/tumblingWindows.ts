/**
 * Tumbling windows (§4.9): fixed windows aligned on multiples of their length, by arrival time.
 * A batch never spans two windows; live lanes and replays cut their pages here alike.
 */

export const windowStartOf = (arrivalMs: number, windowMs: number) => Math.floor(arrivalMs / windowMs) * windowMs;

/** The records of a page in its first record's window, that window's bounds, and whether records of a later one follow. */
export function firstWindow<T extends { arrivalMs: number }>(page: T[], windowMs: number): { records: T[]; start: number; end: number; laterFollows: boolean } {
  const start = windowStartOf(page[0]!.arrivalMs, windowMs);
  const records = page.filter((r) => windowStartOf(r.arrivalMs, windowMs) === start);
  return { records, start, end: start + windowMs, laterFollows: records.length < page.length };
}

/** AWS keeps at most 1 MB of state per shard (§4.9): a larger one ends its window early. */
export const STATE_LIMIT_BYTES = 1024 * 1024;
/** A batch leaves that much of the 6 MB payload to the state. */
export const STATE_RESERVE_BYTES = STATE_LIMIT_BYTES;

/** A window state's size as JSON, the form it travels and is kept in. */
export const stateBytes = (state: unknown): number => Buffer.byteLength(JSON.stringify(state ?? {}));

/** The payload room a window's state takes: its size, and at least what AWS allows it. */
export function stateReserveBytes(state: unknown): number {
  return Math.max(STATE_RESERVE_BYTES, stateBytes(state));
}
