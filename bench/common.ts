import type { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import type { TestEngine } from '../test/harness.ts';

/** Small pieces the bench scenarios share. */

/**
 * Node's flags for a shardline server process, as package.json's start script, bin/shardline and
 * the Dockerfile give them: a 64 MB young generation's half (V8's default is 16 MB). Delivery
 * reads pages of a thousand records that live across a few awaits; with the default, every
 * scavenge copied them and garbage collection took a quarter of the engine's CPU.
 */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=64'];

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

/** A raw query function through the same driver as the engine's database: the baselines' reader. */
export type RawQuery = (text: string, params: unknown[]) => Promise<Array<{ seq: string }>>;

/**
 * A raw reader of the test engine's database: its own postgres.js pool of `connections` on
 * Postgres, the engine's own instance on PGlite (one process). close() ends the pool.
 */
export function rawReader(t: TestEngine, connections: number): { query: RawQuery; close: () => Promise<void> } {
  if (t.databaseUrl) {
    const client = postgres(t.databaseUrl, { max: connections, onnotice: () => {} });
    return {
      // Prepared, as the engine's hot statements are (one round trip per page instead of two).
      query: (text, params) => client.unsafe(text, params as never[], { prepare: true }) as unknown as Promise<Array<{ seq: string }>>,
      close: () => client.end(),
    };
  }
  const pg = (t.engine.handle.db as unknown as { $client: PGlite }).$client;
  return { query: async (text, params) => (await pg.query<{ seq: string }>(text, params)).rows, close: async () => {} };
}
