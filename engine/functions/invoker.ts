/**
 * Invokes function targets: HTTP functions the way an event source mapping calls the Lambda
 * Invoke API (including the RIE's quirks, aws-semantics.md §5.3), and module functions
 * in-process with a Lambda-like context. Enforces timeoutSeconds and reservedConcurrency.
 *
 * A module handler runs on the engine's event loop: a timeout abandons its promise, but a
 * handler that blocks synchronously cannot be interrupted.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { coerceError } from '../errors.ts';
import { type FunctionInfo, resolveModule } from './functionCatalog.ts';

/**
 * A module handler's own copy of an event. AWS hands every invocation fresh JSON, so whatever
 * one attempt changes in its event (data decoded in place, a window's state added to) must not
 * reach the retry, the other half of a bisected batch, or the next invocation of the window.
 * A Kinesis record holds only strings and numbers under two levels of objects: those are copied
 * and the strings shared. Anything else (DynamoDB records, the window and state) goes through
 * JSON, as it would to an HTTP function.
 */
export function ownCopy(event: unknown): unknown {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return jsonCopy(event);
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    copy[key] = key === 'Records' && Array.isArray(value) ? value.map(copyRecord) : jsonCopy(value);
  }
  return copy;
}

function copyRecord(record: unknown): unknown {
  const kinesis = (record as { kinesis?: unknown } | null)?.kinesis;
  if (typeof kinesis === 'object' && kinesis !== null) return { ...(record as object), kinesis: { ...kinesis } };
  return jsonCopy(record);
}

const jsonCopy = (value: unknown): unknown => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

export type InvokeResult =
  | { outcome: 'OK'; body: unknown; durationMs: number }
  | {
    outcome: 'FUNCTION_ERROR' | 'TIMEOUT' | 'THROTTLED';
    error: string;
    durationMs: number;
    body?: unknown;
    statusCode?: number;
  };

export interface InvokerOptions { functionsDir: string; region: string; accountId: string }

/** Lambda's synchronous response limit; a larger response is a function error, as in AWS. */
export const MAX_RESPONSE_BYTES = 6 * 1024 * 1024;
const MAX_ERROR_CHARS = 4096;
const TIMEOUT_TEXT = /^Task timed out after \d+(?:\.\d+)? seconds\.?$/;
const TIMEOUT_IN_MESSAGE = /Task timed out after \d+(?:\.\d+)? seconds/;
/** Keys of the error documents Lambda runtimes return (Node, Python, Java, Go, .NET, Ruby). */
const ERROR_DOCUMENT_KEYS = new Set(['errorType', 'errorMessage', 'trace', 'stackTrace', 'requestId', 'cause']);

type Failure = Extract<InvokeResult, { outcome: 'FUNCTION_ERROR' | 'TIMEOUT' | 'THROTTLED' }>;
type Outcome = { outcome: 'OK'; body: unknown } | Omit<Failure, 'durationMs'>;

interface Slots { active: number; limit: number | null; waiters: Array<(granted: boolean) => void> }

const CLOSED: Omit<Failure, 'durationMs'> = { outcome: 'THROTTLED', error: 'Invoker closed: the engine is stopping.' };

const truncate = (text: string) => (text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}…` : text);
const timedOutText = (fn: FunctionInfo) => `Task timed out after ${fn.timeoutSeconds.toFixed(2)} seconds`;
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export class Invoker {
  private readonly slots = new Map<string, Slots>();
  private readonly modules = new Map<string, Promise<Record<string, unknown>>>();
  private readonly controllers = new Set<AbortController>();
  /** Part of every module function's logStreamName, like a Lambda execution environment's id. */
  private readonly instanceId = randomBytes(16).toString('hex');
  private closed = false;

  constructor(private readonly options: InvokerOptions) {}

  /** Invocations of the function running now (not counting those waiting for a slot). */
  inFlight(name: string): number {
    return this.slots.get(name)?.active ?? 0;
  }

  /**
   * Invokes fn with the event. An HTTP function is sent its JSON; a module function is handed
   * a copy of its own (ownCopy), which shares the records' strings, so in-process delivery
   * never serialises a Kinesis record's data.
   */
  async invoke(fn: FunctionInfo, event: unknown, requestId: string): Promise<InvokeResult> {
    if (this.closed) return { ...CLOSED, durationMs: 0 };
    if (fn.reservedConcurrency === 0) {
      return {
        outcome: 'THROTTLED',
        error: 'TooManyRequestsException: Rate Exceeded. (ReservedFunctionConcurrentInvocationLimitExceeded: reservedConcurrency is 0)',
        durationMs: 0,
      };
    }
    if (!(await this.acquire(fn.name, fn.reservedConcurrency))) return { ...CLOSED, durationMs: 0 };
    const started = performance.now();
    try {
      const result = fn.url !== null
        ? await this.invokeHttp(fn, fn.url, JSON.stringify(event))
        : await this.invokeModule(fn, ownCopy(event), requestId);
      return { ...result, durationMs: Math.round(performance.now() - started) } as InvokeResult;
    } finally {
      this.release(fn.name);
    }
  }

  /** Aborts HTTP invocations in flight and releases waiters; both report THROTTLED (not counted). */
  async close(): Promise<void> {
    this.closed = true;
    for (const controller of this.controllers) controller.abort();
    for (const slots of this.slots.values()) {
      for (const waiter of slots.waiters.splice(0)) waiter(false);
    }
  }

  private acquire(name: string, limit: number | null): Promise<boolean> {
    let slots = this.slots.get(name);
    if (!slots) this.slots.set(name, (slots = { active: 0, limit, waiters: [] }));
    slots.limit = limit;
    // A raised limit lets in those already waiting first, in their order.
    admitWaiters(slots);
    if (slots.waiters.length === 0 && (limit === null || slots.active < limit)) {
      slots.active++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => slots.waiters.push(resolve));
  }

  private release(name: string): void {
    const slots = this.slots.get(name);
    if (!slots) return;
    slots.active--;
    admitWaiters(slots);
    if (slots.active === 0 && slots.waiters.length === 0) this.slots.delete(name);
  }

  private async invokeHttp(fn: FunctionInfo, url: string, payload: string): Promise<Outcome> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, fn.timeoutSeconds * 1000);
    this.controllers.add(controller);
    try {
      const response = await fetch(url, {
        method: 'POST',
        body: payload,
        headers: {
          'content-type': 'application/json',
          'x-amz-invocation-type': 'RequestResponse',
          'user-agent': 'shardline',
        },
        // A redirect would turn the POST into a GET elsewhere: report it instead.
        redirect: 'manual',
        signal: controller.signal,
      });
      const text = await readLimited(response, MAX_RESPONSE_BYTES);
      if (text === undefined) {
        return {
          outcome: 'FUNCTION_ERROR',
          error: `Function.ResponseSizeTooLarge: Response payload size exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`,
          statusCode: response.status,
        };
      }
      return classifyHttpResponse(response.status, response.headers, text, isInvokeApi(url));
    } catch (raw) {
      if (timedOut) return { outcome: 'TIMEOUT', error: timedOutText(fn) };
      if (this.closed) return CLOSED;
      return { outcome: 'FUNCTION_ERROR', error: networkError(url, raw) };
    } finally {
      clearTimeout(timer);
      this.controllers.delete(controller);
    }
  }

  private async loadHandler(fn: FunctionInfo): Promise<(...args: unknown[]) => unknown> {
    // Re-resolved at every invocation: the directory may have changed since create.
    const { path, exportName } = resolveModule(this.options.functionsDir, fn.module!);
    let loading = this.modules.get(path);
    if (!loading) {
      loading = import(pathToFileURL(path).href) as Promise<Record<string, unknown>>;
      this.modules.set(path, loading);
      loading.catch(() => this.modules.delete(path));
    }
    const handler = (await loading)[exportName];
    if (typeof handler !== 'function') {
      throw Object.assign(new Error(`${fn.module} is undefined or not a function.`), { name: 'Runtime.HandlerNotFound' });
    }
    return handler as (...args: unknown[]) => unknown;
  }

  private async invokeModule(fn: FunctionInfo, event: unknown, requestId: string): Promise<Outcome> {
    const timeoutMs = fn.timeoutSeconds * 1000;
    const deadline = Date.now() + timeoutMs;
    let handler: (...args: unknown[]) => unknown;
    try {
      handler = await this.loadHandler(fn);
    } catch (raw) {
      const error = coerceError(raw);
      const name = error.name.startsWith('Runtime.') ? error.name : 'Runtime.ImportModuleError';
      return { outcome: 'FUNCTION_ERROR', error: truncate(`${name}: ${error.message}`) };
    }
    const context = this.context(fn, requestId, deadline);
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const finish = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const timer = setTimeout(() => finish({ outcome: 'TIMEOUT', error: timedOutText(fn) }), Math.max(0, deadline - Date.now()));
      const succeed = (value: unknown) => finish({ outcome: 'OK', body: value === undefined ? null : value });
      const fail = (raw: unknown) => {
        const error = coerceError(raw);
        finish({ outcome: 'FUNCTION_ERROR', error: truncate(`${error.name}: ${error.message}`) });
      };
      try {
        // Legacy callback style: a handler declaring three parameters reports through the callback.
        const callbackStyle = handler.length >= 3;
        const callback = (err: unknown, result?: unknown) => (err != null ? fail(err) : succeed(result));
        const returned = callbackStyle ? handler(event, context, callback) : handler(event, context);
        if (isThenable(returned)) returned.then(succeed, fail);
        else if (!callbackStyle) succeed(returned);
      } catch (raw) {
        fail(raw);
      }
    });
  }

  private context(fn: FunctionInfo, requestId: string, deadline: number) {
    const day = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
    return {
      awsRequestId: requestId,
      functionName: fn.name,
      functionVersion: '$LATEST',
      invokedFunctionArn: `arn:aws:lambda:${this.options.region}:${this.options.accountId}:function:${fn.name}`,
      memoryLimitInMB: '128',
      logGroupName: `/aws/lambda/${fn.name}`,
      logStreamName: `${day}/[$LATEST]${this.instanceId}`,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    };
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null &&
    typeof (value as { then?: unknown }).then === 'function';
}

/** The body as text, or undefined when it exceeds `limit` bytes (the rest is not read). */
async function readLimited(response: Response, limit: number): Promise<string | undefined> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let size = 0;
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    text += decoder.decode(value, { stream: true });
  }
}

function parseBody(text: string): unknown {
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * A Lambda error document: a string errorMessage with an errorType, or an object made of
 * error-document keys only (real Lambda's timeout body has errorMessage alone). Requiring
 * this shape keeps a legitimate response that happens to carry one such key a success.
 */
function isErrorDocument(body: unknown): body is Record<string, unknown> {
  if (!isObject(body)) return false;
  const hasMessage = typeof body.errorMessage === 'string';
  const hasType = typeof body.errorType === 'string';
  if (hasMessage && hasType) return true;
  return (hasMessage || hasType) && Object.keys(body).every((key) => ERROR_DOCUMENT_KEYS.has(key));
}

function errorDocumentText(body: Record<string, unknown>): string {
  const type = typeof body.errorType === 'string' ? body.errorType : undefined;
  const message = typeof body.errorMessage === 'string' ? body.errorMessage : undefined;
  return [type, message].filter((part) => part !== undefined).join(': ');
}

const describeBody = (body: unknown): string =>
  body === null ? '(empty body)' : typeof body === 'string' ? body : JSON.stringify(body);

/** Lambda's service-error shape (restJson1): {"Type", "message"|"Message"} or an x-amzn-ErrorType header. */
function serviceError(body: unknown, headers: Headers): { type: string; message: string } | undefined {
  const header = headers.get('x-amzn-errortype');
  const shaped = isObject(body) && typeof body.Type === 'string' &&
    (typeof body.message === 'string' || typeof body.Message === 'string');
  if (header === null && !shaped) return undefined;
  const obj = isObject(body) ? body : {};
  // The header may carry a namespace suffix: "TooManyRequestsException:http://internal.amazon.com/…".
  const type = header?.split(':')[0] || (typeof obj.__type === 'string' ? obj.__type : undefined) || 'ServiceException';
  const message = typeof obj.message === 'string' ? obj.message : typeof obj.Message === 'string' ? obj.Message : describeBody(body);
  return { type, message };
}

/** How an event source mapping reads an Invoke API response (aws-semantics.md §5.1–5.3). */
/** A URL of the Lambda Invoke API (the RIE's, `sam local start-lambda`'s), which never answers a success with no body. */
const INVOKE_API_PATH = /\/2015-03-31\/functions\/[^/]+\/invocations\/?$/;
export const isInvokeApi = (url: string) => INVOKE_API_PATH.test(new URL(url).pathname);

/**
 * `invokeApi`: the URL is the Lambda Invoke API's, where a handler that returns nothing still
 * answers `null`, and an empty 200 is the RIE's answer for a runtime that crashed (§5.3): a
 * function error. Elsewhere an empty body is a success with no answer (null).
 */
export function classifyHttpResponse(status: number, headers: Headers, text: string, invokeApi = false): Outcome {
  const body = parseBody(text);
  const service = serviceError(body, headers);
  // Pre-invoke failures: the service refused or failed before running the function.
  if (status === 429 || (status >= 500 && service)) {
    const what = service ? `${service.type}: ${service.message}` : `HTTP 429: ${describeBody(body)}`;
    return { outcome: 'THROTTLED', error: truncate(what), statusCode: status, body };
  }
  if (status < 200 || status >= 300) {
    const what = isErrorDocument(body) ? errorDocumentText(body) : describeBody(body);
    return { outcome: 'FUNCTION_ERROR', error: truncate(`HTTP ${status}: ${what}`), statusCode: status, body };
  }
  if (invokeApi && text.length === 0 && headers.get('x-amz-function-error') === null) {
    return { outcome: 'FUNCTION_ERROR', error: 'Runtime.ExitError: the runtime answered with an empty body (it exited before returning a result).', statusCode: status, body };
  }
  // The RIE answers a timeout with 200 and this plain text, without the error header.
  const trimmed = text.trim();
  if (TIMEOUT_TEXT.test(trimmed)) return { outcome: 'TIMEOUT', error: trimmed, statusCode: status, body };
  const functionError = headers.get('x-amz-function-error');
  if (functionError !== null || isErrorDocument(body)) {
    const what = isErrorDocument(body) ? errorDocumentText(body) : `${functionError}: ${describeBody(body)}`;
    const outcome = TIMEOUT_IN_MESSAGE.test(what) ? 'TIMEOUT' : 'FUNCTION_ERROR';
    return { outcome, error: truncate(what), statusCode: status, body };
  }
  return { outcome: 'OK', body };
}

function networkError(url: string, raw: unknown): string {
  const error = coerceError(raw);
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (error as { code?: string }).code;
  const host = new URL(url).host;
  if (code === 'ECONNREFUSED') return `Connection refused by ${host} (ECONNREFUSED): is the function server running?`;
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return `Connection to ${host} was reset before a complete response (${code}).`;
  }
  return truncate(`Request to ${host} failed: ${cause?.message ?? error.message}${code ? ` (${code})` : ''}`);
}

/** Hands free slots to waiters, first come first served. */
function admitWaiters(slots: Slots): void {
  while (slots.waiters.length > 0 && (slots.limit === null || slots.active < slots.limit)) {
    slots.active++;
    slots.waiters.shift()!(true);
  }
}
