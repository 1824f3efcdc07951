/** Small pieces the bench scenarios share. */

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export const fmt = (n: number) => Math.round(n).toLocaleString('en');

/**
 * The source of a no-op module function that counts the records it is handed per stream name
 * in a global Map (named `globalName`), so a scenario can tell when everything arrived.
 */
export const countingNoopModule = (globalName: string) => `
export async function handler(event) {
  const delivered = (globalThis.${globalName} ??= new Map());
  const stream = event.Records[0].eventSourceARN.split('/').pop();
  delivered.set(stream, (delivered.get(stream) ?? 0) + event.Records.length);
  return null;
}`;
