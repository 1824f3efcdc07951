/**
 * The `shardline` command.
 *   shardline serve    GraphQL API, subscriptions and the engine (what `npm start` runs)
 *   shardline worker   the engine only: delivers mappings beside other processes on one Postgres
 * Configuration comes from the environment, as for `npm start` (see the README).
 */
import { ConfigError, loadConfig } from '../engine/config.ts';
import { openEngine } from '../engine/engine.ts';

const USAGE = 'usage: shardline <serve|worker>';

async function worker(): Promise<void> {
  const config = loadConfig();
  if (!config.databaseUrl) {
    console.error('shardline worker: DATABASE_URL must point at the Postgres the other processes use (PGlite is one process).');
    process.exit(1);
  }
  const engine = await openEngine(config);
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

async function main(): Promise<void> {
  const [command] = process.argv.slice(2);
  if (command === 'serve' || command === undefined) {
    await import('../api/server.ts');
  } else if (command === 'worker') {
    await worker();
  } else {
    console.error(USAGE);
    process.exit(2);
  }
}

main().catch((error) => {
  if (error instanceof ConfigError) console.error(`shardline: ${error.message}`);
  else console.error('shardline:', error instanceof Error ? error.message : error);
  process.exit(1);
});
