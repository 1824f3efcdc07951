/**
 * `npm start`: reads the configuration once, opens the database (PGlite under
 * SHARDLINE_DATA_DIR unless DATABASE_URL is set), applies migrations, starts the engine and
 * serves GraphQL and subscriptions. SIGINT/SIGTERM stop it cleanly.
 */
import { ConfigError, isLoopbackHost, loadConfig } from '../engine/config.ts';
import { surviveDatabaseOutages } from '../engine/databaseOutageGuard.ts';
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
  surviveDatabaseOutages();
  const engine = await openEngine({ ...config, writeRequestsPerSecond: config.limits.writeRequestsPerSecond });
  const authenticated = await engine.tokens.authRequired();
  if (!authenticated && !isLoopbackHost(config.host)) {
    console.error(`shardline: refusing to listen on ${config.host} without authentication. Set SHARDLINE_ADMIN_TOKEN, or create a token (shardline token create --name NAME --scopes admin), or listen on 127.0.0.1.`);
    await engine.handle.close();
    process.exit(1);
  }
  await engine.start();
  const app = buildApp({ engine, limits: config.limits });
  const url = await app.start(config.port, config.host);
  const database = config.databaseUrl ? 'Postgres (DATABASE_URL)' : `embedded PGlite in ${config.dataDir}`;
  console.log(`shardline serving ${url} (GraphiQL in a browser, graphql-ws on the same path) on ${database}`);
  console.log(authenticated
    ? 'shardline: authentication on: every request needs a token (Authorization: Bearer …; SigV4 on the AWS APIs).'
    : 'shardline: local mode: no API token is configured, so nothing is authenticated and the server listens on this machine only. Set SHARDLINE_ADMIN_TOKEN or create a token to turn authentication on.');

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
