/**
 * One migration runner for both drivers. It applies the SQL files drizzle-kit wrote into
 * migrations/ (in journal order, each in its own transaction, statements split at
 * `--> statement-breakpoint`) and records each in shardline_migrations. On Postgres an
 * advisory lock keeps two starting processes from applying the same migration twice.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from './db.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations/', import.meta.url));
const LOCK_ID = 7_262_001;

interface JournalEntry { idx: number; tag: string }

export function listMigrations(): { tag: string; statements: string[] }[] {
  const journal = JSON.parse(readFileSync(`${MIGRATIONS_DIR}meta/_journal.json`, 'utf8')) as { entries: JournalEntry[] };
  return journal.entries
    .sort((a, b) => a.idx - b.idx)
    .map((entry) => ({
      tag: entry.tag,
      statements: readFileSync(`${MIGRATIONS_DIR}${entry.tag}.sql`, 'utf8')
        .split('--> statement-breakpoint')
        .map((s) => s.trim())
        .filter((s) => s.replace(/--.*$/gm, '').trim() !== ''),
    }));
}

export async function migrate(handle: DatabaseHandle): Promise<string[]> {
  const applied: string[] = [];
  await handle.transaction(async (tx) => {
    if (handle.kind === 'postgres') await tx.execute(sql`select pg_advisory_xact_lock(${LOCK_ID})`);
    await tx.execute(sql`create table if not exists shardline_migrations (
      tag text primary key, applied_at timestamptz not null default now())`);
    const done = new Set(
      (await handle.query<{ tag: string }>(sql`select tag from shardline_migrations`, tx)).map((r) => r.tag),
    );
    for (const migration of listMigrations()) {
      if (done.has(migration.tag)) continue;
      for (const statement of migration.statements) await tx.execute(sql.raw(statement));
      await tx.execute(sql`insert into shardline_migrations (tag) values (${migration.tag})`);
      applied.push(migration.tag);
    }
  });
  return applied;
}

/** True when every migration in migrations/ has been applied (for readiness checks). */
export async function migrationsApplied(handle: DatabaseHandle): Promise<boolean> {
  const rows = await handle.query<{ tag: string }>(sql`select tag from shardline_migrations`);
  const done = new Set(rows.map((r) => r.tag));
  return listMigrations().every((m) => done.has(m.tag));
}
