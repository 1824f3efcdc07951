/**
 * Test harness: every store/engine test runs on PGlite, and on a real Postgres when
 * DATABASE_URL is set. Each Postgres run gets a database of its own (created from the
 * DATABASE_URL server, dropped afterwards), so test files never see each other's rows.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { DEFAULT_ENGINE_OPTIONS, Engine, type EngineOptions } from '../engine/engine.ts';
import { openDatabase } from '../engine/db.ts';
import { migrate } from '../engine/migrate.ts';
import { ensurePartitions } from '../engine/records/partitions.ts';
import assert from 'node:assert/strict';
import { type ErrorCode, ShardlineError } from '../engine/errors.ts';

export interface Backend { name: 'pglite' | 'postgres'; url?: string }

export const backends: Backend[] = [
  { name: 'pglite' },
  ...(process.env.DATABASE_URL ? [{ name: 'postgres' as const, url: process.env.DATABASE_URL }] : []),
];

/** Creates a fresh, empty database on the DATABASE_URL server; returns its URL and a drop(). */
export async function freshPostgresDatabase(url: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `shardline_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return {
    url: parsed.toString(),
    drop: async () => {
      const again = postgres(url, { max: 1, onnotice: () => {} });
      await again.unsafe(`drop database if exists ${name} with (force)`);
      await again.end();
    },
  };
}

export interface TestEngine { engine: Engine; databaseUrl: string | undefined; close: () => Promise<void> }

/** An engine on a fresh, migrated database of the given backend (housekeeper not started). */
export async function openTestEngine(backend: Backend, options: Partial<EngineOptions> = {}): Promise<TestEngine> {
  const fresh = backend.url ? await freshPostgresDatabase(backend.url) : undefined;
  const handle = await openDatabase({ databaseUrl: fresh?.url });
  await migrate(handle);
  await ensurePartitions(handle, new Date(Date.now() - 86_400_000), 3);
  const engine = new Engine(handle, { ...DEFAULT_ENGINE_OPTIONS, ...options });
  return {
    engine,
    databaseUrl: fresh?.url,
    close: async () => {
      await engine.stop();
      await handle.close();
      await fresh?.drop();
    },
  };
}

/**
 * Writes `file` into functionsDir: a module function keeping the data of every record it is
 * given, as text, in `seen`; resolves with the module the engine will load (the same instance).
 */
export async function sinkFunction(functionsDir: string, file = 'sink.mjs'): Promise<{ seen: string[] }> {
  writeFileSync(join(functionsDir, file), `
    export const seen = [];
    export async function handler(event) {
      for (const r of event.Records) seen.push(Buffer.from(r.kinesis.data, 'base64').toString());
      return null;
    }`);
  return import(join(functionsDir, file));
}

/** Base64 of a string. */
export const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** Awaits a condition, polling, bounded: fails with `message` after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, message: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms: ${message}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Awaits `promise`, failing after `ms` with `what` instead of hanging the test file. */
export async function bounded<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Awaits a rejection with a ShardlineError of `code` whose message matches every pattern. */
export async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, ...patterns: RegExp[]): Promise<ShardlineError> {
  let caught: unknown;
  try {
    await promise;
  } catch (raw) {
    caught = raw;
  }
  assert.ok(caught instanceof ShardlineError, `expected a ShardlineError ${code}, got ${caught === undefined ? 'success' : String(caught)}`);
  assert.equal(caught.code, code, `code of: ${caught.message}`);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}
