/**
 * The CLI's only way to the server: GraphQL over HTTP (queries, mutations) and graphql-ws
 * (subscriptions), on the one URL. Failures become CliErrors with the documented exit codes:
 * no answer → UnreachableError (4), an answer with errors → GraphQLResponseError (5).
 */
import { CliError, EXIT, type GraphQLErrorShape, GraphQLResponseError, UnreachableError } from './errors.ts';

export interface ClientOptions {
  url: string;
  token?: string;
  /** per HTTP request (default 120 s) */
  timeoutMs?: number;
}

export interface SubscriptionSink<T> {
  /** each event's data */
  next: (data: T) => void;
}

export interface Subscription {
  /** resolves when the server completes the subscription or stop() is called; rejects with a CliError */
  done: Promise<void>;
  stop: () => Promise<void>;
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  const inner = cause instanceof AggregateError ? cause.errors[0] : cause;
  const code = (inner as { code?: string } | undefined)?.code;
  const message = (inner as Error | undefined)?.message ?? (error as Error).message;
  if (code && !message.includes(code)) return `${code} ${message}`;
  return message || String(error);
}

export class GraphQLClient {
  readonly url: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor({ url, token, timeoutMs = 120_000 }: ClientOptions) {
    this.url = url;
    this.#token = token;
    this.#timeoutMs = timeoutMs;
  }

  get authorization(): string | undefined {
    return this.#token ? `Bearer ${this.#token}` : undefined;
  }

  /** Runs a query or mutation; returns `data`, or throws. */
  async request<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<T> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
    };
    if (this.authorization) headers.authorization = this.authorization;
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      if ((error as Error).name === 'TimeoutError') {
        throw new UnreachableError(this.url, `no answer within ${Math.round(this.#timeoutMs / 1000)} s`);
      }
      throw new UnreachableError(this.url, describeNetworkError(error));
    }
    let body: { data?: T | null; errors?: GraphQLErrorShape[] };
    try {
      body = JSON.parse(text);
    } catch {
      throw new UnreachableError(this.url, `HTTP ${response.status} ${response.statusText} is not a GraphQL answer (is the URL the server's /graphql path?)`);
    }
    if (body.errors?.length) throw new GraphQLResponseError(body.errors);
    if (!response.ok || body.data == null) {
      throw new UnreachableError(this.url, `HTTP ${response.status} ${response.statusText} without data`);
    }
    return body.data;
  }

  /** Starts a subscription over graphql-ws (connection_init carries the authorization). */
  async subscribe<T = Record<string, any>>(query: string, variables: Record<string, unknown>, sink: SubscriptionSink<T>): Promise<Subscription> {
    const [{ createClient }, { default: WebSocket }] = await Promise.all([import('graphql-ws'), import('ws')]);
    const wsUrl = this.url.replace(/^http/, 'ws');
    let connected = false;
    let stopped = false;
    let socketError: string | undefined;
    const client = createClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      lazy: true,
      connectionParams: this.authorization ? { authorization: this.authorization } : undefined,
      on: {
        connected: () => { connected = true; },
        error: (error) => {
          const message = (error as { message?: unknown; error?: { code?: string } })?.message;
          if (typeof message === 'string' && message) socketError = message;
        },
      },
    });
    let unsubscribe = () => {};
    const done = new Promise<void>((resolve, reject) => {
      unsubscribe = client.subscribe<T>({ query, variables }, {
        next: (result) => {
          if (result.errors?.length) {
            reject(new GraphQLResponseError(result.errors as GraphQLErrorShape[]));
            return;
          }
          if (result.data) sink.next(result.data as T);
        },
        error: (error) => {
          if (stopped) return resolve();
          reject(this.#subscriptionError(error, connected, socketError));
        },
        complete: () => resolve(),
      });
    });
    const stop = async () => {
      stopped = true;
      unsubscribe();
      await client.dispose();
    };
    done.then(stop, stop);
    return { done, stop };
  }

  #subscriptionError(error: unknown, connected: boolean, socketError: string | undefined): CliError {
    if (Array.isArray(error)) return new GraphQLResponseError(error as GraphQLErrorShape[]);
    const close = error as { code?: unknown; reason?: unknown; message?: unknown };
    if (typeof close?.code === 'number') {
      const reason = typeof close.reason === 'string' && close.reason ? close.reason : undefined;
      if (close.code === 4401 || close.code === 4403) {
        const code = close.code === 4401 ? 'UNAUTHENTICATED' : 'FORBIDDEN';
        return new GraphQLResponseError([{ message: reason ?? 'the server refused the connection', extensions: { code } }]);
      }
      if (close.code >= 4400 && close.code < 4500 && reason) {
        return new GraphQLResponseError([{ message: reason, extensions: { code: 'INVALID_ARGUMENT' } }]);
      }
      const detail = socketError ?? `connection closed (code ${close.code}${reason ? `: ${reason}` : ''})`;
      if (!connected) return new UnreachableError(this.url, detail);
      return new CliError(EXIT.UNREACHABLE, `lost the connection to shardline at ${this.url}: ${detail}`);
    }
    const message = typeof close?.message === 'string' && close.message ? close.message : socketError ?? 'the WebSocket failed';
    return new UnreachableError(this.url, message);
  }
}
