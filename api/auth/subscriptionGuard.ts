/**
 * graphql-ws connections and their principals. A connection authenticates once, with its
 * connection_init payload `{ "authorization": "Bearer <token>" }`, before any subscription
 * starts; a connection without a valid token is closed with 4401. Each connection may hold at
 * most `maxSubscriptionsPerConnection` operations at once. When a token is revoked (here or, via
 * the notifier, in another process) its connections are closed with 4403; a re-check every
 * few seconds covers a notification that was lost.
 */
import type { Context as WsContext } from 'graphql-ws';
import type { Extra } from 'graphql-ws/use/ws';
import { GraphQLError } from 'graphql';
import type { Principal } from '../../engine/auth/scopes.ts';
import type { Engine } from '../../engine/engine.ts';
import { authenticate } from './authenticate.ts';
import { isDatabaseUnavailable } from '../../engine/db.ts';

const RECHECK_MS = 5000;

type Connection = WsContext<Record<string, unknown>, Extra & { principal?: Principal }>;

export class SubscriptionGuard {
  readonly #byToken = new Map<number, Set<Connection>>();
  /** Counts revocations heard: one during a connection's check makes it look again. */
  #revocations = 0;
  readonly #offRevoked: () => void;
  readonly #timer: NodeJS.Timeout;

  constructor(private readonly engine: Engine, private readonly maxSubscriptionsPerConnection: number) {
    const offTokens = engine.events.on('tokens', ({ tokenId }) => this.#close(tokenId));
    // Revocations in other processes may have gone unheard: check the open connections' tokens now.
    const offResync = engine.events.on('resync', () => void this.#recheck());
    this.#offRevoked = () => { offTokens(); offResync(); };
    this.#timer = setInterval(() => void this.#recheck(), RECHECK_MS);
    this.#timer.unref();
  }

  /** connection_init: authenticates, or closes the socket with 4401 and the reason. */
  readonly onConnect = async (ctx: Connection): Promise<boolean> => {
    const revocations = this.#revocations;
    let auth;
    try {
      auth = await authenticate(this.engine, ctx.connectionParams?.authorization);
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      // 1013 (try again later) is a close graphql-ws clients retry; a thrown error would close
      // with 4500, which ends their subscriptions for good, though the database is back soon.
      ctx.extra.socket.close(1013, 'UNAVAILABLE: the database is unavailable; retry shortly.');
      return false;
    }
    if (!auth.error && auth.principal.tokenId !== undefined && revocations !== this.#revocations
      && !(await this.engine.tokens.live([auth.principal.tokenId])).has(auth.principal.tokenId)) {
      // A revocation heard during the check may have been of this very token.
      ctx.extra.socket.close(4403, 'FORBIDDEN: the token was revoked.');
      return false;
    }
    if (auth.error) {
      ctx.extra.socket.close(4401, `${auth.error.code}: ${auth.error.message}`.slice(0, 123));
      return false;
    }
    // Closed during the checks: onClose has already run and found no principal, so nothing to register.
    if (ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) return false;
    ctx.extra.principal = auth.principal;
    const tokenId = auth.principal.tokenId;
    if (tokenId !== undefined) {
      const set = this.#byToken.get(tokenId) ?? new Set();
      set.add(ctx);
      this.#byToken.set(tokenId, set);
    }
    return true;
  };

  /** The principal of a connection, or the errors that refuse a new operation on it. */
  admit(ctx: Connection): { principal: Principal; errors?: undefined } | { principal?: undefined; errors: GraphQLError[] } {
    const principal = ctx.extra.principal;
    if (!principal) return { errors: [new GraphQLError('Authentication required.', { extensions: { code: 'UNAUTHENTICATED' } })] };
    // graphql-ws has already entered the new operation in ctx.subscriptions.
    const open = Object.keys(ctx.subscriptions).length;
    if (open > this.maxSubscriptionsPerConnection) {
      return { errors: [new GraphQLError(
        `This connection already has ${open - 1} operations open; the limit is ${this.maxSubscriptionsPerConnection} per connection (SHARDLINE_MAX_SUBSCRIPTIONS_PER_CONNECTION).`,
        { extensions: { code: 'LIMIT_EXCEEDED' } })] };
    }
    return { principal };
  }

  readonly onClose = (ctx: Connection): void => {
    const tokenId = ctx.extra.principal?.tokenId;
    if (tokenId === undefined) return;
    const set = this.#byToken.get(tokenId);
    set?.delete(ctx);
    if (set?.size === 0) this.#byToken.delete(tokenId);
  };

  dispose(): void {
    this.#offRevoked();
    clearInterval(this.#timer);
  }

  #close(tokenId: number): void {
    this.#revocations++;
    for (const ctx of this.#byToken.get(tokenId) ?? []) ctx.extra.socket.close(4403, 'FORBIDDEN: the token was revoked.');
    this.#byToken.delete(tokenId);
  }

  async #recheck(): Promise<void> {
    const ids = [...this.#byToken.keys()];
    if (ids.length === 0) return;
    try {
      const live = await this.engine.tokens.live(ids);
      for (const id of ids) if (!live.has(id)) this.#close(id);
    } catch {
      // The database is away: keep the connections; the next re-check decides.
    }
  }
}
