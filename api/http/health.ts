/**
 * GET /healthz: the process is up (200 {"status":"ok"}).
 * GET /readyz: 200 {"status":"ready"} when the database answers and every migration is
 * applied; 503 {"status":"unavailable","reason":…} otherwise (or when the check takes longer
 * than READY_TIMEOUT_MS).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sql } from 'drizzle-orm';
import type { Engine } from '../../engine/engine.ts';
import { migrationsApplied } from '../../engine/migrate.ts';

export const READY_TIMEOUT_MS = 2000;

function json(req: IncomingMessage, res: ServerResponse, status: number, body: Record<string, unknown>): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : text);
}

function onlyGet(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('Method not allowed\n');
  return false;
}

export function healthz(req: IncomingMessage, res: ServerResponse): void {
  if (onlyGet(req, res)) json(req, res, 200, { status: 'ok' });
}

/** Why the engine is not ready, or undefined when it is. */
export async function notReadyReason(engine: Engine): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`the database did not answer within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
  });
  const check = (async () => {
    try {
      await engine.handle.query(sql`select 1`);
    } catch (error) {
      return `the database does not answer: ${(error as Error).message}`;
    }
    try {
      return (await migrationsApplied(engine.handle)) ? undefined : 'migrations are not all applied';
    } catch (error) {
      return `migrations cannot be read: ${(error as Error).message}`;
    }
  })();
  try {
    return await Promise.race([check, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function readyz(engine: Engine, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!onlyGet(req, res)) return;
  const reason = await notReadyReason(engine);
  if (reason === undefined) json(req, res, 200, { status: 'ready' });
  else json(req, res, 503, { status: 'unavailable', reason });
}
