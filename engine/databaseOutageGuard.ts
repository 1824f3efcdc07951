/**
 * While Postgres restarts, the driver fails every query in flight, and in rare races it rejects
 * a promise nothing awaits any more (seen once in the Postgres restart drill: a raw ECONNRESET
 * as an unhandled rejection). Node would end the process on it, though every part of the
 * engine recovers from an outage on its own. Installed by the process entry points: a database
 * outage error that reaches no handler is logged; any other unhandled rejection still ends the
 * process, as Node would. The driver passes a socket's own error on as it is, so a bare socket
 * code (ECONNRESET, EPIPE …) counts too, from whichever connection: a dropped connection is
 * not a fault that leaves state behind.
 */
import { isDatabaseUnavailable } from './db.ts';

export function surviveDatabaseOutages(log: (message: string) => void = (m) => console.error(m)): void {
  process.on('unhandledRejection', (reason) => {
    if (!isDatabaseUnavailable(reason)) throw reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    log(`shardline: a connection failed with nothing waiting on it (${message}); carrying on, delivery and requests retry on their own`);
  });
}
