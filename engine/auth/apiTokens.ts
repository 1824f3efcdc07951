/**
 * API tokens: created (the secret is shown once), listed, revoked, and checked on every request.
 *
 * A token is `sl_` + 32 random bytes (base64url); only its SHA-256 is stored. Each token also
 * carries an AWS-style key pair (access key id + secret access key) for SigV4-signed calls to
 * the Kinesis and DynamoDB Streams APIs. SHARDLINE_ADMIN_TOKEN, when set, is a bootstrap token
 * with every scope that is never stored; its key pair is SHARDLINE_ADMIN / the token itself.
 *
 * Authentication is required once SHARDLINE_ADMIN_TOKEN is set or any token was ever created
 * (revoking every token does not fall back to local mode). Lookups are remembered for a second,
 * so a revocation takes effect everywhere within a second; the `tokens` event carries it to open
 * subscriptions of this and (through the notifier) other processes at once.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import type { AuditLog } from '../audit.ts';
import type { DatabaseHandle } from '../db.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import type { EngineEvents } from '../events.ts';
import { apiTokens } from '../schema.ts';
import { type Principal, SCOPES, type Scope, parseScopes } from './scopes.ts';

export const ADMIN_ACCESS_KEY_ID = 'SHARDLINE_ADMIN';
const CACHE_MS = 1000;
const NAME = /^[A-Za-z0-9_.@-]{1,64}$/;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export interface TokenView {
  id: number;
  name: string;
  scopes: Scope[];
  accessKeyId: string;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface CreatedToken extends TokenView {
  /** The bearer token: shown once, stored only as a hash. */
  token: string;
  secretAccessKey: string;
}

/** A SigV4 key pair and whom it stands for. */
export interface AccessKey { principal: Principal; secretAccessKey: string }

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

function accessKeyId(): string {
  const bytes = randomBytes(16);
  let id = 'SLAK';
  for (const byte of bytes) id += BASE32[byte % 32];
  return id;
}

function view(row: typeof apiTokens.$inferSelect): TokenView {
  return { id: row.id, name: row.name, scopes: row.scopes as Scope[], accessKeyId: row.accessKeyId, createdAt: row.createdAt, revokedAt: row.revokedAt };
}

export class ApiTokens {
  readonly #adminToken: Buffer | undefined;
  #required: boolean;
  #requiredCheckedAt = 0;
  readonly #bearers = new Map<string, { principal: Principal | undefined; at: number }>();
  readonly #keys = new Map<string, { key: AccessKey | undefined; at: number }>();
  /** Bumped when a token is revoked: a lookup in flight across it is not remembered. */
  #version = 0;

  #forget(): void {
    this.#bearers.clear();
    this.#keys.clear();
    this.#version++;
  }

  constructor(
    private readonly handle: DatabaseHandle,
    private readonly events: EngineEvents,
    private readonly audit: AuditLog,
    options: { adminToken?: string },
  ) {
    this.#adminToken = options.adminToken ? Buffer.from(options.adminToken) : undefined;
    this.#required = this.#adminToken !== undefined;
    // A token revoked in another process: forget what this one remembers of it.
    events.on('resync', () => this.#forget());
    events.on('tokens', () => {
      this.#forget();
      this.#requiredCheckedAt = 0;
    });
  }

  /** True once authentication is required (admin token set, or any token ever created). */
  async authRequired(): Promise<boolean> {
    if (this.#required) return true;
    const now = Date.now();
    if (now - this.#requiredCheckedAt < CACHE_MS) return false;
    const [row] = await this.handle.db.select({ id: apiTokens.id }).from(apiTokens).limit(1);
    this.#requiredCheckedAt = Date.now();
    if (row) this.#required = true;
    return this.#required;
  }

  async create(input: { name: string; scopes: readonly string[] | string }, actor: string): Promise<CreatedToken> {
    const name = input.name.trim();
    if (!NAME.test(name)) throw invalidArgument(`name must be 1 to 64 characters of letters, digits, "_", ".", "@" or "-", got "${input.name}".`);
    // revokeApiToken takes an id or a name: a name of digits alone would be read as an id.
    if (/^\d+$/.test(name)) throw invalidArgument(`name must hold a character other than a digit (digits alone name a token by id), got "${input.name}".`);
    const scopes = parseScopes(input.scopes);
    const token = `sl_${randomBytes(32).toString('base64url')}`;
    const secretAccessKey = randomBytes(30).toString('base64');
    try {
      const created = await this.handle.db.transaction(async (tx) => {
        const [row] = await tx.insert(apiTokens).values({ name, scopes, tokenHash: sha256(token), accessKeyId: accessKeyId(), secretAccessKey }).returning();
        await this.audit.record('token.create', `token:${name}`, { scopes }, actor, tx);
        return row!;
      });
      this.#required = true;
      return { ...view(created), token, secretAccessKey };
    } catch (raw) {
      if ((raw as { code?: string }).code === '23505' || /unique|duplicate/i.test(String((raw as Error).message))) {
        throw new ShardlineError('CONFLICT', `A token named "${name}" exists; revoke it first or choose another name.`);
      }
      throw raw;
    }
  }

  async list(): Promise<TokenView[]> {
    const rows = await this.handle.db.select().from(apiTokens).orderBy(asc(apiTokens.id));
    return rows.map(view);
  }

  /** Revokes a live token by id or name; its requests and subscriptions stop within a second. */
  async revoke(idOrName: string, actor: string): Promise<TokenView> {
    const byId = /^\d{1,15}$/.test(idOrName); // longer: no id of ours (and past bigint's range)
    const [row] = await this.handle.db.transaction(async (tx) => {
      const rows = await tx.update(apiTokens).set({ revokedAt: sql`now()` })
        .where(and(byId ? eq(apiTokens.id, Number(idOrName)) : eq(apiTokens.name, idOrName), isNull(apiTokens.revokedAt)))
        .returning();
      if (rows[0]) await this.audit.record('token.revoke', `token:${rows[0].name}`, null, actor, tx);
      return rows;
    });
    if (!row) throw invalidArgument(`token: no live token has the ${byId ? 'id' : 'name'} "${idOrName}".`);
    this.#forget();
    this.events.emit('tokens', { tokenId: row.id });
    return view(row);
  }

  /** The principal of a bearer token, or undefined for an unknown or revoked one. */
  async authenticate(bearer: string): Promise<Principal | undefined> {
    if (this.#adminToken && this.#isAdminToken(bearer)) return { name: 'admin', scopes: SCOPES };
    const hash = sha256(bearer);
    const cached = this.#bearers.get(hash);
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.principal;
    const version = this.#version;
    const [row] = await this.handle.db.select().from(apiTokens)
      .where(and(eq(apiTokens.tokenHash, hash), isNull(apiTokens.revokedAt))).limit(1);
    const principal = row ? { name: row.name, scopes: row.scopes as Scope[], tokenId: row.id } : undefined;
    if (version === this.#version) this.#remember(this.#bearers, hash, { principal, at: Date.now() });
    return principal;
  }

  /** The SigV4 key of an access key id, or undefined for an unknown or revoked one. */
  async accessKey(id: string): Promise<AccessKey | undefined> {
    if (this.#adminToken && id === ADMIN_ACCESS_KEY_ID) {
      return { principal: { name: 'admin', scopes: SCOPES }, secretAccessKey: this.#adminToken.toString() };
    }
    const cached = this.#keys.get(id);
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.key;
    const version = this.#version;
    const [row] = await this.handle.db.select().from(apiTokens)
      .where(and(eq(apiTokens.accessKeyId, id), isNull(apiTokens.revokedAt))).limit(1);
    const key = row ? { principal: { name: row.name, scopes: row.scopes as Scope[], tokenId: row.id }, secretAccessKey: row.secretAccessKey } : undefined;
    if (version === this.#version) this.#remember(this.#keys, id, { key, at: Date.now() });
    return key;
  }

  /** Which of these token ids are still live (open subscriptions are re-checked with it). */
  async live(ids: readonly number[]): Promise<Set<number>> {
    if (ids.length === 0) return new Set();
    const rows = await this.handle.db.select({ id: apiTokens.id }).from(apiTokens)
      .where(and(sql`${apiTokens.id} = any(${sql.raw(`array[${ids.map((id) => Number(id)).join(',')}]::bigint[]`)})`, isNull(apiTokens.revokedAt)));
    return new Set(rows.map((r) => r.id));
  }

  #isAdminToken(bearer: string): boolean {
    const given = Buffer.from(bearer);
    return given.length === this.#adminToken!.length && timingSafeEqual(given, this.#adminToken!);
  }

  /** Bounded: a flood of random tokens must not grow memory. */
  #remember<V>(cache: Map<string, V>, key: string, value: V): void {
    if (cache.size >= 10_000) cache.clear();
    cache.set(key, value);
  }
}
