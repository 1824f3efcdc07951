/**
 * Function targets: an HTTP URL (Lambda Invoke API compatible) or a module inside the functions
 * directory. Everything is validated here, at create time; the invoker re-checks module paths.
 */
import { realpathSync, statSync } from 'node:fs';
import { extname, isAbsolute, relative, resolve, sep } from 'node:path';
import { asc, eq } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import { functions } from '../schema.ts';
import { isUniqueViolation } from '../streams/streamCatalog.ts';

export interface FunctionInfo {
  name: string;
  url: string | null;
  module: string | null;
  timeoutSeconds: number;
  reservedConcurrency: number | null;
}

export interface CreateFunctionInput {
  name: string;
  url?: string | null;
  module?: string | null;
  timeoutSeconds?: number | null;
  reservedConcurrency?: number | null;
}

export const FUNCTION_NAME = /^[a-zA-Z0-9_.-]{1,128}$/;
export const TIMEOUT_SECONDS = { min: 1, max: 900, default: 3 };
export const RESERVED_CONCURRENCY = { min: 0, max: 1000 };
export const MAX_URL_LENGTH = 2048;
export const MAX_MODULE_LENGTH = 1024;
export const MODULE_EXTENSIONS = ['.js', '.mjs', '.ts'];
const EXPORT_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

export const functionNotFound = (name: string) =>
  new ShardlineError('FUNCTION_NOT_FOUND', `Function "${name}" does not exist.`);

type FunctionRow = typeof functions.$inferSelect;

const toFunctionInfo = (row: FunctionRow): FunctionInfo => ({
  name: row.name,
  url: row.url,
  module: row.module,
  timeoutSeconds: row.timeoutSeconds,
  reservedConcurrency: row.reservedConcurrency,
});

const quote = (value: string) => JSON.stringify(value.length > 140 ? `${value.slice(0, 140)}…` : value);

/** True when `child` is `parent` itself or lies below it (both absolute, normalised). */
function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

export interface ResolvedModule { path: string; exportName: string }

/**
 * Resolves "file#export" to the real path of a file inside functionsDir, or throws
 * INVALID_ARGUMENT. Symlinks are followed and must land inside the (real) directory too.
 */
export function resolveModule(functionsDir: string, module: string): ResolvedModule {
  const hash = module.lastIndexOf('#');
  if (hash <= 0 || hash === module.length - 1) {
    throw invalidArgument(`module must be "file#export" (a file inside the functions directory and an export name), got ${quote(module)}.`);
  }
  const file = module.slice(0, hash);
  const exportName = module.slice(hash + 1);
  if (!EXPORT_NAME.test(exportName)) {
    throw invalidArgument(`module export must be a JavaScript identifier, got ${quote(exportName)}.`);
  }
  // Reject drive letters and backslash roots too, whatever platform we run on.
  if (isAbsolute(file) || /^[a-zA-Z]:/.test(file) || file.startsWith('\\') || file.includes('\0')) {
    throw invalidArgument(`module file must be a relative path inside the functions directory, got ${quote(file)}.`);
  }
  const dir = resolve(functionsDir);
  const lexical = resolve(dir, file);
  if (!isInside(dir, lexical)) {
    throw invalidArgument(`module file must stay inside the functions directory, got ${quote(file)}.`);
  }
  if (!MODULE_EXTENSIONS.includes(extname(lexical))) {
    throw invalidArgument(`module file must end in ${MODULE_EXTENSIONS.join(', ')}, got ${quote(file)}.`);
  }
  // Synchronous calls on purpose: this runs before every invocation of a module function, and
  // three calls to the thread pool (and the event-loop turns to collect them) cost a delivering
  // engine more than the few microseconds these system calls take on a local directory.
  let realDir: string;
  let realFile: string;
  try {
    realDir = realpathSync.native(dir);
    realFile = realpathSync.native(lexical);
  } catch {
    throw invalidArgument(`module file ${quote(file)} does not exist in the functions directory.`);
  }
  if (!isInside(realDir, realFile)) {
    throw invalidArgument(`module file ${quote(file)} resolves (through a symlink) outside the functions directory.`);
  }
  if (!MODULE_EXTENSIONS.includes(extname(realFile))) {
    throw invalidArgument(`module file must end in ${MODULE_EXTENSIONS.join(', ')}, got ${quote(file)} (a link to ${quote(realFile)}).`);
  }
  if (!statSync(realFile).isFile()) {
    throw invalidArgument(`module file ${quote(file)} is not a regular file.`);
  }
  return { path: realFile, exportName };
}

export function validateFunctionName(name: string, field = 'name'): void {
  if (typeof name !== 'string' || !FUNCTION_NAME.test(name)) {
    throw invalidArgument(`${field} must be 1–128 characters of [a-zA-Z0-9_.-], got ${quote(String(name))}.`);
  }
}

function validateUrl(url: string): void {
  if (url.length > MAX_URL_LENGTH) throw invalidArgument(`url must be at most ${MAX_URL_LENGTH} characters, got ${url.length}.`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidArgument(`url must be an absolute http: or https: URL, got ${quote(url)}.`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalidArgument(`url must use http: or https:, got ${quote(parsed.protocol)}.`);
  }
  if (!parsed.hostname) throw invalidArgument(`url must have a host, got ${quote(url)}.`);
  // Credentials would be stored in clear and shown by every listing.
  if (parsed.username || parsed.password) throw invalidArgument('url must not contain credentials (user:password@).');
}

function checkInteger(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(`${field} must be an integer between ${min} and ${max}, got ${value}.`);
  }
}

export class FunctionCatalog {
  private readonly functionsDir: string;

  constructor(
    private readonly handle: DatabaseHandle,
    options: { functionsDir: string },
  ) {
    this.functionsDir = resolve(options.functionsDir);
  }

  async create(input: CreateFunctionInput): Promise<FunctionInfo> {
    validateFunctionName(input.name);
    const url = input.url ?? null;
    const module = input.module ?? null;
    if ((url === null) === (module === null)) {
      throw invalidArgument('Exactly one of url or module must be given.');
    }
    if (url !== null) validateUrl(url);
    if (module !== null) {
      if (module.length > MAX_MODULE_LENGTH) {
        throw invalidArgument(`module must be at most ${MAX_MODULE_LENGTH} characters, got ${module.length}.`);
      }
      resolveModule(this.functionsDir, module);
    }
    const timeoutSeconds = input.timeoutSeconds ?? TIMEOUT_SECONDS.default;
    checkInteger('timeoutSeconds', timeoutSeconds, TIMEOUT_SECONDS.min, TIMEOUT_SECONDS.max);
    const reservedConcurrency = input.reservedConcurrency ?? null;
    if (reservedConcurrency !== null) {
      checkInteger('reservedConcurrency', reservedConcurrency, RESERVED_CONCURRENCY.min, RESERVED_CONCURRENCY.max);
    }
    try {
      const [row] = await this.handle.db.insert(functions)
        .values({ name: input.name, url, module, timeoutSeconds, reservedConcurrency })
        .returning();
      return toFunctionInfo(row!);
    } catch (raw) {
      if (isUniqueViolation(raw)) throw new ShardlineError('FUNCTION_EXISTS', `Function "${input.name}" already exists.`);
      throw raw;
    }
  }

  async find(name: string): Promise<FunctionInfo | undefined> {
    const [row] = await this.handle.db.select().from(functions).where(eq(functions.name, name));
    return row ? toFunctionInfo(row) : undefined;
  }

  async get(name: string): Promise<FunctionInfo> {
    const fn = await this.find(name);
    if (!fn) throw functionNotFound(name);
    return fn;
  }

  readonly #recent = new Map<string, { fn: FunctionInfo; at: number }>();
  #recentVersion = 0;

  /**
   * get(), remembered for a second: the delivery loop asks for its function before every
   * invocation, and a round trip per batch is measurable at low latency. A function deleted
   * in another process is noticed within that second.
   */
  async getRecent(name: string): Promise<FunctionInfo> {
    const hit = this.#recent.get(name);
    if (hit && Date.now() - hit.at < 1000) return hit.fn;
    const version = this.#recentVersion;
    const fn = await this.get(name);
    // Deleted meanwhile: this read may be of the old function; it is not remembered.
    if (version === this.#recentVersion) this.#recent.set(name, { fn, at: Date.now() });
    return fn;
  }

  async list(): Promise<FunctionInfo[]> {
    const rows = await this.handle.db.select().from(functions).orderBy(asc(functions.name));
    return rows.map(toFunctionInfo);
  }

  /** Deletes the function; FUNCTION_NOT_FOUND when there is none (as deleteStream). */
  async delete(name: string): Promise<boolean> {
    this.#recent.delete(name);
    this.#recentVersion++;
    const rows = await this.handle.db.delete(functions).where(eq(functions.name, name)).returning({ name: functions.name });
    if (rows.length === 0) throw functionNotFound(name);
    return true;
  }
}
