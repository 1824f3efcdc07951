/**
 * The `shardline` command.
 *   shardline serve    GraphQL API, subscriptions and the engine (what `npm start` runs)
 *   shardline worker   the engine only: delivers mappings beside other processes on one Postgres
 *   shardline token    create, list and revoke API tokens (on the database, like worker)
 * Configuration comes from the environment, as for `npm start` (see the README).
 *
 * Scripting commands speak to a running server over GraphQL only (cli/run.ts):
 *   shardline replay | seek | redrive | lag | tail | put | capture   (--help on each)
 * The engine is imported only by serve and worker, so the scripting commands start quickly
 * and never touch a database.
 */
import { CLIENT_COMMANDS, isClientCommand, runClientCommand } from './run.ts';

const USAGE = `usage: shardline <serve|worker|token|${CLIENT_COMMANDS.join('|')}> [options]`;

const HELP = `${USAGE}

  serve     GraphQL API, subscriptions and the engine (what npm start runs)
  worker    the engine only: delivers mappings beside other processes on one Postgres
  token     create, list and revoke API tokens: shardline token create --name N --scopes read,operate

Scripting (over GraphQL to a running server; --url, --token, --json on each; --help for details):
  replay    re-deliver a window of a stream to a function (a replay job)
  seek      move the checkpoints of an event source mapping
  redrive   re-deliver the records of a mapping's discarded batches
  lag       records behind and iterator age of mappings, per shard
  tail      print records as they are written, one JSON line each
  put       write records read from stdin, one JSON object per line
  capture   tail a stream of a Kinesis (or DynamoDB Streams) endpoint into a local stream; --list, --stop ID

exit codes: 0 ok, 2 bad argument, 3 job failed, cancelled or with records failed (--wait), or records failed (put),
            4 server unreachable, 5 GraphQL error`;

async function worker(): Promise<void> {
  const { loadConfig } = await import('../engine/config.ts');
  const { openEngine } = await import('../engine/engine.ts');
  const { surviveDatabaseOutages } = await import('../engine/databaseOutageGuard.ts');
  const config = loadConfig();
  if (!config.databaseUrl) {
    console.error('shardline worker: DATABASE_URL must point at the Postgres the other processes use (PGlite is one process).');
    process.exit(1);
  }
  if (config.delivery === false) {
    console.error('shardline worker: SHARDLINE_DELIVERY=off leaves a worker nothing to do; a worker delivers (unset it, or run serve).');
    process.exit(1);
  }
  surviveDatabaseOutages();
  const engine = await openEngine({ ...config, writeRequestsPerSecond: config.limits.writeRequestsPerSecond });
  await engine.start();
  console.log(`shardline worker ${engine.poller?.owner} delivering from ${new URL(config.databaseUrl).host}`);
  const stop = async () => {
    await engine.stop();
    await engine.handle.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

/** Exits once stdout and stderr have taken everything written to them. */
async function exitWith(code: number): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise((resolve) => s.write('', resolve))));
  process.exit(code);
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'serve' || command === undefined) {
    await import('../api/server.ts');
  } else if (command === 'worker') {
    await worker();
  } else if (command === 'token') {
    const { runTokenCommand } = await import('./tokenCommand.ts');
    await exitWith(await runTokenCommand(rest));
  } else if (isClientCommand(command)) {
    await exitWith(await runClientCommand(command, rest));
  } else if (command === 'help' || command === '--help' || command === '-h') {
    console.log(HELP);
  } else {
    console.error(`shardline: unknown command "${command}"\n${USAGE}\n(shardline --help for more)`);
    process.exit(2);
  }
}

main().catch(async (error) => {
  const { ConfigError } = await import('../engine/config.ts');
  if (error instanceof ConfigError) console.error(`shardline: ${error.message}`);
  else console.error('shardline:', error instanceof Error ? error.message : error);
  process.exit(1);
});
