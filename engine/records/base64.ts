/** Strict base64 (standard alphabet, padded) without a regular expression: this runs over every byte of every write. */
const VALID = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') VALID[c.charCodeAt(0)] = 1;
const PAD = 61; // '='

export function isBase64(value: string): boolean {
  // What every encoder writes (canonical base64) is confirmed natively at about half the cost
  // of the loop below: decoded and encoded again, it is the same text. The loop decides the rest.
  if (value.length >= 64 && Buffer.from(value, 'base64').toString('base64') === value) return true;
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
