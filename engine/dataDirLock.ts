/**
 * One process at a time on an embedded database directory. PGlite has no lock of its own: a
 * second process opening the same directory (a second server, `shardline token` beside a
 * running one) writes over the first's files, losing acknowledged writes or leaving a directory
 * that no longer starts. The lock is a file holding the owner's pid, created exclusively; one
 * left by a process that is gone is taken over.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ShardlineError } from './errors.ts';

const LOCK_FILE = 'shardline.lock';

/** Directories this process holds (a file naming our own pid may be a predecessor's: pid 1 in a container). */
const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the directory's lock; returns its release. Throws CONFLICT while another live process holds it. */
export function lockDataDir(dir: string): () => void {
  const file = join(resolve(dir), LOCK_FILE);
  if (held.has(file)) throw new ShardlineError('CONFLICT', `The embedded database in ${dir} is already open in this process.`);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      held.add(file);
      return () => {
        held.delete(file);
        // Only our own lock: a takeover after we were presumed gone is not ours to remove.
        try {
          if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
      throw new ShardlineError('CONFLICT',
        `The embedded database in ${dir} is in use by process ${holder}; stop it first, or use Postgres (DATABASE_URL) to run several processes.`);
    }
    // Left by a process that is gone (or by a predecessor that had our pid): taken over.
    rmSync(file, { force: true });
  }
  throw new ShardlineError('CONFLICT', `Could not take the lock of the embedded database in ${dir}.`);
}
