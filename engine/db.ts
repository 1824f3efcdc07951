/**
 * The one module that knows the two drivers: postgres.js for a real Postgres, PGlite for the
 * embedded default. Everything else talks to `Database` and `rowsOf`.
 *
 * PGlite runs one connection in-process: statements queue behind each other and an open
 * transaction blocks every other caller until it ends, so keep transactions short.
 */
import { mkdirSync } from 'node:fs';
import { lockDataDir } from './dataDirLock.ts';
import { PGlite } from '@electric-sql/pglite';
import { type SQL, sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema.ts';

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
export type DriverKind = 'postgres' | 'pglite';

export interface DatabaseHandle {
  db: Database;
  kind: DriverKind;
  /** Rows of a raw statement, whichever driver ran it. */
  query<T = Record<string, unknown>>(statement: SQL, executor?: Database): Promise<T[]>;
  /**
   * Like query, as a prepared statement: on Postgres the driver parses it once per connection
   * and then sends one round trip per run, where an unnamed statement with parameters takes
   * two (a describe, then the bind). For hot statements whose text does not vary: each
   * distinct text stays prepared on every connection.
   */
  prepared<T = Record<string, unknown>>(statement: SQL, executor?: Database): Promise<T[]>;
  /** Runs fn in a transaction, retrying serialization failures and deadlocks a few times. */
  transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T>;
  /**
   * Postgres only: in one transaction of its own connection, runs `first` (prepared, as
   * prepared()), then streams to `copy` (a COPY … FROM STDIN; drizzle has no COPY) the data
   * that `data` makes of first's rows, and commits; resolves with data's result. When data
   * throws, nothing is written and the error is thrown. onCommit is told when the COPY is done
   * and the COMMIT goes out. Retries serialization failures and deadlocks as transaction() does.
   */
  copyTransaction?<T, R = Record<string, unknown>>(
    first: SQL, copy: string, data: (rows: R[]) => { data: Buffer; result: T }, onCommit?: () => void,
  ): Promise<T>;
  /**
   * Postgres only: a query's rows in PostgreSQL's binary COPY format (`COPY (query) TO STDOUT
   * (FORMAT binary)`), as the chunks Postgres sent them in (in practice one per row; a row may
   * span chunks). COPY takes no parameters, so the query's are written into its text as
   * literals: numbers, bigints and strings only.
   */
  copyOut?(query: SQL): Promise<Buffer[]>;
  /**
   * Postgres only: LISTEN on a channel over a dedicated connection that reconnects by itself.
   * `onListen` runs each time the LISTEN is in place: first, and again after every reconnect
   * (notifications sent while it was down are lost). Resolves with a function that stops
   * listening. (PGlite is one process: nothing to hear.)
   */
  listen?(channel: string, onPayload: (payload: string) => void, onListen?: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** postgres:// URL; when absent PGlite is used. */
  databaseUrl?: string | undefined;
  /** PGlite data folder; when absent PGlite keeps everything in memory. */
  dataDir?: string | undefined;
  /** Connections in the postgres.js pool. (Default: 10) */
  maxConnections?: number;
}

/** postgres.js returns an array of rows, PGlite an object with `rows`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}

/**
 * A database error's SQLSTATE and message, whether the driver's error arrives as it is or
 * wrapped by drizzle (as `cause`).
 */
export function databaseError(raw: unknown): { code: string | undefined; message: string } {
  const e = raw as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } } | null | undefined;
  const code = typeof e?.cause?.code === 'string' ? e.cause.code : typeof e?.code === 'string' ? e.code : undefined;
  const message = typeof e?.cause?.message === 'string' ? e.cause.message : typeof e?.message === 'string' ? e.message : '';
  return { code, message };
}

const RETRYABLE = new Set(['40001', '40P01']);

/**
 * Codes of a database that is restarting or out of reach: postgres.js's own connection codes,
 * the socket's, and Postgres's admin-shutdown / cannot-connect-now / connection classes.
 */
const UNAVAILABLE_CODES = new Set([
  'CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED', 'CONNECT_TIMEOUT',
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '57P03',
  '08000', '08001', '08003', '08004', '08006',
]);

/** Postgres refusing a text value it cannot hold (a NUL character): the request's fault, not the server's. */
const UNSTORABLE_TEXT_CODES = new Set(['22021', '22P05']);

function hasCode(error: unknown, codes: Set<string>): boolean {
  // Drizzle wraps the driver's error as `cause`.
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && codes.has(code)) return true;
  }
  return false;
}

/** True when an error says the database is unreachable or restarting. */
export const isDatabaseUnavailable = (error: unknown) => hasCode(error, UNAVAILABLE_CODES);

/** True when an error says a text value could not be stored or compared (it holds NUL). */
export const isUnstorableText = (error: unknown) => hasCode(error, UNSTORABLE_TEXT_CODES);

/** The parts of a drizzle database (or transaction) that prepared() uses. */
interface DrizzleInternals {
  dialect: { sqlToQuery(statement: SQL): { sql: string; params: unknown[] } };
  session: {
    prepareQuery(query: { sql: string; params: unknown[] }, fields: undefined, name: string, arrayMode: boolean): { execute(): Promise<unknown> };
  };
}

/**
 * Runs fn (a transaction, or one statement: its own transaction) again when Postgres aborted it
 * for a serialization failure or a deadlock, up to 5 times: nothing of an aborted run was written.
 */
export async function retryingConflicts<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (raw) {
      const { code } = databaseError(raw);
      if (attempt >= 5 || !code || !RETRYABLE.has(code)) throw raw;
      await new Promise((r) => setTimeout(r, 5 * attempt * (0.5 + Math.random())));
    }
  }
}

export async function openDatabase(options: OpenOptions): Promise<DatabaseHandle> {
  let db: Database;
  let close: () => Promise<void>;
  let kind: DriverKind;
  let listen: DatabaseHandle['listen'];
  let copyTransaction: DatabaseHandle['copyTransaction'];
  let copyOut: DatabaseHandle['copyOut'];
  if (options.databaseUrl) {
    const client = postgres(options.databaseUrl, {
      max: options.maxConnections ?? 10,
      onnotice: () => {},
      // JIT compilation only pays off for long analytical queries; the lag query's plan
      // crossed its cost threshold and spent ~0.5 s compiling for ~2 ms of work.
      connection: { application_name: 'shardline', jit: 'off' },
      // The driver's default reconnect delay grows 3^n with every failed attempt of any pool
      // connection, up to 20 s: after a Postgres restart of a second or two, delivery and
      // writes waited up to 20 s for a reconnect timer (the Postgres restart drill). At most 1 s.
      backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1),
    });
    db = drizzlePostgres(client, { schema }) as unknown as Database;
    close = () => client.end({ timeout: 5 });
    kind = 'postgres';
    const { dialect } = db as unknown as DrizzleInternals;
    copyTransaction = <T, R>(first: SQL, copy: string, data: (rows: R[]) => { data: Buffer; result: T }, onCommit?: () => void) => retryingConflicts(async () => {
      const connection = await client.reserve();
      try {
        // BEGIN, the statement and the COPY's start go out together (the driver pipelines a
        // reserved connection's queries): the data waits for the statement's rows only.
        const query = dialect.sqlToQuery(first);
        const begun = connection.unsafe('begin').execute();
        const rows = connection.unsafe(query.sql, query.params as never[], { prepare: true }).execute();
        const started = connection.unsafe(copy).writable();
        let result: T;
        try {
          const [, firstRows, writable] = await Promise.all([begun, rows, started]);
          let made: { data: Buffer; result: T };
          try {
            made = data([...firstRows] as R[]);
          } catch (error) {
            writable.on('error', () => {}); // the error is the one thrown here
            writable.destroy(error as Error); // CopyFail: Postgres ends the COPY with an error
            throw error;
          }
          result = made.result;
          await new Promise<void>((resolve, reject) => {
            writable.once('error', reject);
            writable.once('finish', resolve);
            writable.end(made.data);
          });
        } catch (error) {
          await Promise.allSettled([begun, rows, started]);
          await connection.unsafe('rollback').catch(() => {});
          throw error;
        }
        const committed = connection.unsafe('commit').execute();
        onCommit?.();
        await committed;
        return result;
      } finally {
        connection.release();
      }
    });
    copyOut = async (query) => {
      const { sql: text, params } = dialect.sqlToQuery(query);
      const inlined = text.replace(/\$(\d+)/g, (_, n: string) => sqlLiteral(params[Number(n) - 1]));
      const stream = await client.unsafe(`copy (${inlined}) to stdout (format binary)`).readable();
      // Collected from 'data' events: an async iterator would take a microtask hop per row.
      return new Promise<Buffer[]>((resolve, reject) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.once('error', reject);
        stream.once('end', () => resolve(chunks));
      });
    };
    listen = async (channel, onPayload, onListen) => {
      const request = await client.listen(channel, onPayload, onListen);
      return () => request.unlisten();
    };
  } else {
    if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
    const unlock = options.dataDir ? lockDataDir(options.dataDir) : () => {};
    let client: PGlite;
    try {
      client = options.dataDir ? new PGlite(options.dataDir) : new PGlite();
      await client.waitReady;
    } catch (error) {
      unlock();
      throw error;
    }
    yieldBeforeStatements(client);
    db = drizzlePglite(client, { schema }) as unknown as Database;
    close = async () => {
      try {
        await client.close();
      } finally {
        unlock();
      }
    };
    kind = 'pglite';
  }
  const handle: DatabaseHandle = {
    db,
    kind,
    async query<T>(statement: SQL, executor: Database = db) {
      return rowsOf<T>(await executor.execute(statement));
    },
    async prepared<T>(statement: SQL, executor: Database = db) {
      if (kind !== 'postgres') return rowsOf<T>(await executor.execute(statement));
      // drizzle's execute() never prepares; its session does when the query is given a name
      // (postgres.js names and caches the statement itself, per connection).
      const { dialect, session } = executor as unknown as DrizzleInternals;
      return rowsOf<T>(await session.prepareQuery(dialect.sqlToQuery(statement), undefined, 'shardline', false).execute());
    },
    transaction<T>(fn: (tx: Database) => Promise<T>) {
      return retryingConflicts(() => db.transaction((tx) => fn(tx as unknown as Database)));
    },
    close,
    ...(listen ? { listen } : {}),
    ...(copyTransaction ? { copyTransaction } : {}),
    ...(copyOut ? { copyOut } : {}),
  };
  return handle;
}

/**
 * A parameter as an SQL literal, for statements that take none (COPY). Strings with a backslash
 * are refused: their meaning would depend on standard_conforming_strings.
 */
function sqlLiteral(value: unknown): string {
  if (typeof value === 'number' && Number.isFinite(value)) return `(${value})`;
  if (typeof value === 'bigint') return `(${value})`;
  if (typeof value === 'string' && !/[\0\\]/.test(value)) return `'${value.replaceAll("'", "''")}'`;
  throw new TypeError(`No SQL literal for a parameter of type ${typeof value}.`);
}

/**
 * PGlite runs each statement synchronously on the engine's own thread and answers through
 * promises alone, so a loop of statements (a lane working through a backlog, a replay) ran as
 * one chain of microtasks: no timer, socket or HTTP request got in until it ended, and the API
 * froze for as long as the backlog lasted. One macrotask hop before each statement (and each
 * transaction) lets them in; it costs microseconds beside the statement.
 */
function yieldBeforeStatements(client: PGlite): void {
  const hop = () => new Promise<void>((resolve) => setImmediate(resolve));
  const query = client.query.bind(client);
  const transaction = client.transaction.bind(client);
  client.query = (async (...args: Parameters<PGlite['query']>) => {
    await hop();
    return query(...args);
  }) as PGlite['query'];
  client.transaction = (async (...args: Parameters<PGlite['transaction']>) => {
    await hop();
    return transaction(...args);
  }) as PGlite['transaction'];
}

export { sql };
