/**
 * `shardline token create|list|revoke`: the local admin command for API tokens. It opens the
 * database named by the environment (DATABASE_URL, or the PGlite folder — stop the server first
 * when it uses PGlite, which one process at a time may open), like `shardline worker`, so it
 * works before any token exists. A running server also offers createApiToken / revokeApiToken
 * to admin tokens.
 */
import { parseArgs } from 'node:util';
import { SCOPES } from '../engine/auth/scopes.ts';
import { loadConfig } from '../engine/config.ts';
import { openEngine } from '../engine/engine.ts';
import { ShardlineError } from '../engine/errors.ts';

export const TOKEN_USAGE = `usage: shardline token create --name NAME --scopes ${SCOPES.join(',')} [--json]
       shardline token list [--json]
       shardline token revoke ID|NAME`;

/** Runs the command; resolves with the exit code. */
export async function runTokenCommand(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { name: { type: 'string' }, scopes: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
      allowPositionals: true,
    }));
  } catch (error) {
    process.stderr.write(`shardline token: ${(error as Error).message}\n${TOKEN_USAGE}\n`);
    return 2;
  }
  if (values.help || !action || !['create', 'list', 'revoke'].includes(action)) {
    (values.help ? process.stdout : process.stderr).write(`${TOKEN_USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (action === 'create' && (typeof values.name !== 'string' || typeof values.scopes !== 'string')) {
    process.stderr.write(`shardline token create: --name and --scopes are required.\n${TOKEN_USAGE}\n`);
    return 2;
  }
  if (action === 'revoke' && positionals.length !== 1) {
    process.stderr.write(`shardline token revoke: name one token by id or name.\n${TOKEN_USAGE}\n`);
    return 2;
  }
  const config = loadConfig();
  let engine;
  try {
    engine = await openEngine({ ...config, delivery: false });
  } catch (error) {
    if (!(error instanceof ShardlineError && error.code === 'CONFLICT')) throw error;
    // The embedded database is the running server's: tokens go through its API then.
    process.stderr.write(`shardline token ${action}: ${error.message} With the server running, use its API instead `
      + '(createApiToken, revokeApiToken, apiTokens) with an admin token.\n');
    return 5;
  }
  try {
    if (action === 'create') {
      const created = await engine.tokens.create({ name: values.name as string, scopes: values.scopes as string }, 'local-admin');
      if (values.json) {
        process.stdout.write(`${JSON.stringify(created)}\n`);
      } else {
        process.stdout.write(`token ${created.name} (id ${created.id}) with scopes ${created.scopes.join(',')}; shown once, keep it now:\n`
          + `  bearer token       ${created.token}\n`
          + `  access key id      ${created.accessKeyId}\n`
          + `  secret access key  ${created.secretAccessKey}\n`);
      }
    } else if (action === 'list') {
      const tokens = await engine.tokens.list();
      if (values.json) process.stdout.write(`${JSON.stringify(tokens)}\n`);
      else for (const t of tokens) process.stdout.write(`${t.id}\t${t.name}\t${t.scopes.join(',')}\t${t.accessKeyId}\t${t.revokedAt ? `revoked ${t.revokedAt.toISOString()}` : 'live'}\n`);
    } else {
      const revoked = await engine.tokens.revoke(positionals[0]!, 'local-admin');
      process.stdout.write(`revoked token ${revoked.name} (id ${revoked.id})\n`);
    }
    return 0;
  } catch (error) {
    if (error instanceof ShardlineError) {
      process.stderr.write(`shardline token ${action}: ${error.message}\n`);
      return error.code === 'INVALID_ARGUMENT' ? 2 : 5;
    }
    throw error;
  } finally {
    await engine.stop();
    await engine.handle.close();
  }
}
