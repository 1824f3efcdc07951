/**
 * Who is asking: turns an `Authorization: Bearer <token>` value (HTTP header, or the
 * graphql-ws connection_init payload's `authorization`) into a principal. In local mode (no
 * token configured) everyone is the local principal; otherwise a missing or unknown token is
 * UNAUTHENTICATED. Scopes are checked later, per field (api/auth/fieldScopes.ts).
 */
import type { Engine } from '../../engine/engine.ts';
import { ShardlineError } from '../../engine/errors.ts';
import { LOCAL_PRINCIPAL, type Principal } from '../../engine/auth/scopes.ts';

export type AuthResult = { principal: Principal; error?: undefined } | { principal?: undefined; error: ShardlineError };

export async function authenticate(engine: Engine, authorization: unknown): Promise<AuthResult> {
  if (!(await engine.tokens.authRequired())) return { principal: LOCAL_PRINCIPAL };
  if (typeof authorization !== 'string' || authorization.trim() === '') {
    return { error: new ShardlineError('UNAUTHENTICATED', 'Authentication required: send "Authorization: Bearer <token>" (graphql-ws: connection_init payload {"authorization": "Bearer <token>"}).') };
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization.trim());
  if (!match) return { error: new ShardlineError('UNAUTHENTICATED', 'The authorization value must be "Bearer <token>".') };
  const principal = await engine.tokens.authenticate(match[1]!);
  if (!principal) return { error: new ShardlineError('UNAUTHENTICATED', 'The token is not valid or was revoked.') };
  return { principal };
}
