/**
 * `npm start`: reads the configuration once, opens the database (PGlite under
 * SHARDLINE_DATA_DIR unless DATABASE_URL is set), applies migrations, starts the engine and
 * serves GraphQL and subscriptions. SIGINT/SIGTERM stop it cleanly.
 */
import { ConfigError, loadConfig } from '../engine/config.ts';
import { openEngine } from '../engine/engine.ts';
import { buildApp } from './app.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`shardline: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
  const engine = await openEngine(config);
  await engine.start();
  const app = buildApp({ engine });
  const url = await app.start(config.port, config.host);
  const database = config.databaseUrl ? 'Postgres (DATABASE_URL)' : `embedded PGlite in ${config.dataDir}`;
  console.log(`shardline serving ${url} (GraphiQL in a browser, graphql-ws on the same path) on ${database}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`shardline: ${signal}, stopping`);
    await app.stop();
    await engine.stop();
    await engine.handle.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error) => {
  console.error('shardline: failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
