/**
 * Strict base64 (standard alphabet, padded). This runs over every byte of every write, so a
 * valid string is recognised with native scans: Node's decoder skips characters outside its
 * alphabet (and stops at a misplaced '='), so it yields the byte count the length promises
 * only when every character is in that alphabet; its alphabet also holds base64url's '-' and
 * '_', and it reads a character above U+00FF by its low byte, so those are ruled out first.
 * Anything the fast check refuses is judged by the character table (it is invalid, or an
 * oversized string the scratch buffer does not hold).
 */
const VALID = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') VALID[c.charCodeAt(0)] = 1;
const PAD = 61; // '='
/** Decoded into and thrown away; 1 MiB holds any record a put accepts. */
let scratch: Buffer | undefined;
const SCRATCH_BYTES = 1024 * 1024;

export function isBase64(value: string): boolean {
  const length = value.length;
  if (length % 4 !== 0) return false;
  const bytes = base64Length(value);
  if (bytes <= SCRATCH_BYTES && Buffer.byteLength(value, 'utf8') === length && value.indexOf('-') === -1 && value.indexOf('_') === -1) {
    scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES);
    if (scratch.write(value, 0, 'base64') === bytes) return true;
  }
  return isBase64ByTable(value);
}

/** The character-by-character check. */
export function isBase64ByTable(value: string): boolean {
  const length = value.length;
  if (length % 4 !== 0) return false;
  let end = length;
  if (end > 0 && value.charCodeAt(end - 1) === PAD) end--;
  if (end > 0 && value.charCodeAt(end - 1) === PAD) end--;
  if (length - end > 0 && (end % 4) < 2) return false;
  for (let i = 0; i < end; i++) {
    const code = value.charCodeAt(i);
    if (code > 127 || VALID[code] === 0) return false;
  }
  return true;
}

/** Decoded length of a valid base64 string. */
export function base64Length(value: string): number {
  const padding = value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0;
  return (value.length / 4) * 3 - padding;
}

/**
 * The same bytes in canonical base64: strict base64 may set the unused bits of its last
 * character, which decoding ignores and Postgres's encode() never writes.
 */
export function canonicalBase64(value: string): string {
  const length = value.length;
  if (length === 0 || value.charCodeAt(length - 1) !== PAD) return value;
  const padded = value.charCodeAt(length - 2) === PAD ? 2 : 1;
  const last = VALUE_OF[value.charCodeAt(length - 1 - padded)] ?? 0;
  return (last & (padded === 2 ? 0x0f : 0x03)) === 0 ? value : Buffer.from(value, 'base64').toString('base64');
}

const VALUE_OF = new Uint8Array(128);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, i) => (VALUE_OF[c.charCodeAt(0)] = i));
