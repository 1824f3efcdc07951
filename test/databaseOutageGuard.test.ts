/**
 * The process guard of engine/databaseOutageGuard.ts, in real child processes: a database
 * outage error that reaches no handler is logged and the process carries on; any other
 * unhandled rejection still ends the process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';

const ROOT = new URL('..', import.meta.url).pathname;

function run(rejection: string): Promise<{ code: number | null; output: string }> {
  const script = `
    import { surviveDatabaseOutages } from './engine/databaseOutageGuard.ts';
    surviveDatabaseOutages();
    Promise.reject(${rejection});
    setTimeout(() => { console.log('still running'); process.exit(0); }, 50);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })));
}

describe('database outage guard', () => {
  it('logs an unhandled database connection error and keeps the process running', async () => {
    const { code, output } = await run(`Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })`);
    assert.equal(code, 0, output);
    assert.match(output, /shardline: a connection failed with nothing waiting on it \(read ECONNRESET\)/);
    assert.match(output, /still running/);
  });

  it('recognises the driver error wrapped by drizzle (as cause)', async () => {
    const { code, output } = await run(`new Error('Failed query', { cause: Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' }) })`);
    assert.equal(code, 0, output);
    assert.match(output, /still running/);
  });

  it('still ends the process on any other unhandled rejection', async () => {
    const { code, output } = await run(`new Error('a bug')`);
    assert.notEqual(code, 0);
    assert.match(output, /a bug/);
    assert.doesNotMatch(output, /still running/);
  });
});
