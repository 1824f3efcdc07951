/**
 * Scopes and principals. A principal is who a request acts as: a token's name and scopes, the
 * bootstrap admin (SHARDLINE_ADMIN_TOKEN), or `local` when no token is configured at all.
 *
 *   read     queries, subscriptions, /metrics, the AWS APIs' reads
 *   produce  putRecords, writeItems, importRecords, the Kinesis API's writes
 *   operate  replays, seek, redrive, restoreCheckpoints, enable/disable mappings, alert rules
 *   admin    streams, functions, mappings, tokens — and everything above
 */
import { invalidArgument } from '../errors.ts';

export const SCOPES = ['read', 'produce', 'operate', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  /** What the audit log records as the actor. */
  name: string;
  scopes: readonly Scope[];
  /** Set for a stored token (so its open subscriptions can be closed when it is revoked). */
  tokenId?: number;
}

/** The principal of local mode: no token is configured, so nothing is checked. */
export const LOCAL_PRINCIPAL: Principal = { name: 'local', scopes: SCOPES };

export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.includes('admin') || principal.scopes.includes(scope);
}

/** Parses "read,operate" or a list; every name must be a scope, at least one, no repeats. */
export function parseScopes(raw: string | readonly string[], field = 'scopes'): Scope[] {
  const names = (typeof raw === 'string' ? raw.split(',') : [...raw]).map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
  if (names.length === 0) throw invalidArgument(`${field} must name at least one of ${SCOPES.join(', ')}.`);
  const scopes: Scope[] = [];
  for (const name of names) {
    if (!(SCOPES as readonly string[]).includes(name)) {
      throw invalidArgument(`${field}: "${name}" is not a scope; the scopes are ${SCOPES.join(', ')}.`);
    }
    if (!scopes.includes(name as Scope)) scopes.push(name as Scope);
  }
  return scopes;
}
