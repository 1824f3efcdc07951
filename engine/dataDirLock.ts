/**
 * One process at a time on an embedded database directory. PGlite has no lock of its own: a
 * second process opening the same directory (a second server, `shardline token` beside a
 * running one) writes over the first's files, losing acknowledged writes or leaving a directory
 * that no longer starts.
 *
 * The lock is a file naming its holder ({pid, host}), put in place whole (written aside, then
 * hard-linked: an opener never reads it half written) and touched every few seconds while held.
 * A lock is the holder's as long as:
 *   - on this host (same hostname): its pid is alive and is not this process's own pid (a
 *     container's server is pid 1 each time it starts; its predecessor is gone);
 *   - on another host (another container on a shared volume, whose pids this one cannot see):
 *     it was touched within STALE_MS.
 * Otherwise it is left by a process that is gone, and taken over.
 */
import { linkSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { ShardlineError } from './errors.ts';

const LOCK_FILE = 'shardline.lock';
const TOUCH_MS = 5_000;
const STALE_MS = 20_000;

/** Directories this process holds. */
const held = new Set<string>();

interface Holder { pid: number; host: string }

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The lock's holder and age, or undefined when there is no lock (any more). */
function readLock(file: string): { holder: Holder | undefined; ageMs: number } | undefined {
  try {
    const ageMs = Date.now() - statSync(file).mtimeMs;
    const text = readFileSync(file, 'utf8');
    let holder: Holder | undefined;
    try {
      const parsed = JSON.parse(text) as Partial<Holder>;
      if (Number.isInteger(parsed.pid) && typeof parsed.host === 'string') holder = { pid: parsed.pid!, host: parsed.host };
    } catch {
      // an older or foreign file: judged by its age alone
    }
    return { holder, ageMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function heldByAnother(lock: { holder: Holder | undefined; ageMs: number }): boolean {
  const { holder, ageMs } = lock;
  if (holder && holder.host === hostname()) return holder.pid !== process.pid && alive(holder.pid);
  return ageMs < STALE_MS;
}

/** Takes the directory's lock; returns its release. Throws CONFLICT while another process holds it. */
export function lockDataDir(dir: string): () => void {
  const file = join(resolve(dir), LOCK_FILE);
  if (held.has(file)) throw new ShardlineError('CONFLICT', `The embedded database in ${dir} is already open in this process.`);
  const me: Holder = { pid: process.pid, host: hostname() };
  const aside = `${file}.${process.pid}.${Date.now()}`;
  writeFileSync(aside, JSON.stringify(me));
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(aside, file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const lock = readLock(file);
        if (lock === undefined) continue; // released meanwhile: try again
        if (heldByAnother(lock)) {
          const who = lock.holder ? `process ${lock.holder.pid} on ${lock.holder.host}` : 'another process';
          throw new ShardlineError('CONFLICT',
            `The embedded database in ${dir} is in use by ${who}; stop it first, or use Postgres (DATABASE_URL) to run several processes.`);
        }
        rmSync(file, { force: true }); // left by a process that is gone: taken over
        continue;
      }
      held.add(file);
      const touch = setInterval(() => {
        try {
          const now = new Date();
          utimesSync(file, now, now);
        } catch {
          // gone: nothing to keep fresh
        }
      }, TOUCH_MS);
      touch.unref();
      return () => {
        clearInterval(touch);
        held.delete(file);
        // Only our own lock: one taken over after we were judged gone is not ours to remove.
        const lock = readLock(file);
        if (lock?.holder?.pid === me.pid && lock.holder.host === me.host) rmSync(file, { force: true });
      };
    }
    throw new ShardlineError('CONFLICT', `Could not take the lock of the embedded database in ${dir}; try again.`);
  } finally {
    rmSync(aside, { force: true });
  }
}
