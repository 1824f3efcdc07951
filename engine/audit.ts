/**
 * The audit log: every operator action (replays, seek, redrive, mapping and stream changes,
 * resharding) with its actor, target and parameters. The actor is "local" until API tokens
 * name one.
 */
import { desc } from 'drizzle-orm';
import type { Database, DatabaseHandle } from './db.ts';
import { pageSize } from './pageSize.ts';
import { auditLog } from './schema.ts';

export const LOCAL_ACTOR = 'local';

export interface AuditEntry { id: number; at: Date; actor: string; action: string; target: string; details: unknown }

export class AuditLog {
  constructor(private readonly handle: DatabaseHandle) {}

  async record(action: string, target: string, details: unknown, actor = LOCAL_ACTOR, executor: Database = this.handle.db): Promise<void> {
    // A JSON round trip: GraphQL arguments are null-prototype objects and may hold Dates.
    const plain = details === undefined || details === null ? null : JSON.parse(JSON.stringify(details));
    await executor.insert(auditLog).values({ action, target, details: plain, actor });
  }

  async list(first = 100): Promise<AuditEntry[]> {
    return this.handle.db.select().from(auditLog).orderBy(desc(auditLog.id)).limit(pageSize(first));
  }
}
