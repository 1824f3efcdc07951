/**
 * buildApp(): graphql-yoga over HTTP and graphql-ws subscriptions on the same port and path,
 * in front of an engine, with the AWS wire APIs (Kinesis Data Streams, DynamoDB Streams; see
 * api/aws/) and the plain routes (api/http/) on the same port. The port speaks HTTP/1.1 and
 * cleartext HTTP/2 (h2c, what the AWS SDK for JavaScript's Kinesis client uses by default; see
 * api/http/h2c.ts). start()/stop() for the server entry point and for tests.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type Http2Server, type Http2ServerRequest, type Http2ServerResponse, createServer as createHttp2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Context as WsContext, SubscribePayload } from 'graphql-ws';
import { type Extra, useServer } from 'graphql-ws/use/ws';
import { GraphQLError } from 'graphql';
import { createYoga } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { isDatabaseUnavailable } from '../engine/db.ts';
import type { Engine } from '../engine/engine.ts';
import { DEFAULT_LIMITS, type Limits } from '../engine/config.ts';
import type { Principal } from '../engine/auth/scopes.ts';
import type { Context } from './builder.ts';
import { authenticate } from './auth/authenticate.ts';
import { SubscriptionGuard } from './auth/subscriptionGuard.ts';
import { useNulArgumentCheck } from './nulArguments.ts';
import { useQueryLimits } from './queryLimits.ts';
import { type ErrorLogger, createMaskError, useContractErrorCodes, withContractCode } from './errors.ts';
import type { AwsApiOptions } from './aws/context.ts';
import { awsApi } from './aws/service.ts';
import { serveH2c } from './http/h2c.ts';
import { limitRequestTime } from './http/h2RequestTimeout.ts';
import { useSharedSubscriptionExecution } from './sharedSubscriptionExecution.ts';
import { useGraphqlJsExecution } from './graphqlJsExecution.ts';
import { useMutationScopes } from './auth/fieldScopes.ts';
import { useSubscriptionsOverWebSocketOnly } from './subscriptionTransport.ts';
import { BatchedWebSocket } from './batchedWebSocket.ts';
import { metricsRoute, pathOf, publicRoutes } from './http/routes.ts';
import { isJsonContentType, preparseJsonBody } from './http/jsonBody.ts';
import { schema } from './schema.ts';

export interface AppOptions {
  engine: Engine;
  /** Where unexpected errors are reported. (Default: console.error) */
  logError?: ErrorLogger;
  /** Settings of the AWS wire APIs (iterator lifetimes, clock …). */
  aws?: AwsApiOptions;
  /** Request limits (body size, request timeout, query depth and cost, subscriptions per connection). (Default: DEFAULT_LIMITS) */
  limits?: Partial<Limits>;
}

export interface App {
  /** The HTTP/1.1 server; it listens, and hands h2c connections to `http2Server`. */
  server: Server;
  /** The HTTP/2 server of h2c connections (same handlers; GraphQL subscriptions stay on HTTP/1.1). */
  http2Server: Http2Server;
  /** Listens; resolves with the URL of the GraphQL endpoint. */
  start(port: number, host: string): Promise<string>;
  stop(): Promise<void>;
}

export function buildApp({ engine, logError = (e) => console.error('shardline: unexpected error', e), aws = {}, limits: given = {} }: AppOptions): App {
  const limits: Limits = { ...DEFAULT_LIMITS, ...given };
  const yoga = createYoga<{ principal?: Principal }, Context>({
    schema,
    // The principal was established before yoga saw the request (authenticated below, or at connection_init).
    context: ({ principal }) => ({ engine, principal: principal! }),
    graphiql: { subscriptionsProtocol: 'WS' },
    landingPage: false,
    maskedErrors: { maskError: createMaskError(logError) },
    logging: false,
    plugins: [
      useContractErrorCodes(), useQueryLimits(limits), useNulArgumentCheck(), useMutationScopes(),
      useSubscriptionsOverWebSocketOnly('/graphql'), useGraphqlJsExecution(), useSharedSubscriptionExecution(),
    ],
  });
  // AWS API calls (an X-Amz-Target; SigV4-checked there) and the public routes are answered in
  // front of yoga; /metrics and GraphQL need an authenticated principal.
  const awsRequests = awsApi(engine, { maxBodyBytes: limits.maxBodyBytes, ...aws }, logError);
  const open = publicRoutes(engine, logError);
  const metrics = metricsRoute(engine, logError);
  const refuse = (res: ServerResponse, status: number, code: string, message: string, extra: Record<string, string> = {}) => {
    if (res.headersSent) return;
    const body = JSON.stringify({ errors: [{ message, extensions: { code } }] });
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...extra }).end(body);
  };
  const guarded = async (req: IncomingMessage, res: ServerResponse) => {
    // GraphiQL's page (a browser's GET) carries no data; its queries are authenticated like any other.
    const graphiqlPage = req.method === 'GET' && String(req.headers.accept ?? '').includes('text/html') && pathOf(req) === yoga.graphqlEndpoint;
    if (req.method === 'POST') {
      const declared = req.headers['content-length'];
      // A body ends at its Content-Length (node enforces it on HTTP/1.1 and HTTP/2), so checking
      // the declared size bounds what is read; a body without one could be endless.
      if (declared === undefined) {
        return refuse(res, 411, 'INVALID_ARGUMENT', 'A request body needs a Content-Length header.', req.httpVersion === '2.0' ? {} : { connection: 'close' });
      }
      if (Number(declared) > limits.maxBodyBytes) {
        return refuse(res, 413, 'LIMIT_EXCEEDED', `The request body of ${declared} bytes exceeds the limit of ${limits.maxBodyBytes} bytes (SHARDLINE_MAX_BODY_BYTES).`, req.httpVersion === '2.0' ? {} : { connection: 'close' });
      }
    }
    const auth = graphiqlPage ? undefined : await authenticate(engine, req.headers.authorization);
    if (auth?.error) return refuse(res, 401, auth.error.code, auth.error.message, { 'www-authenticate': 'Bearer realm="shardline"' });
    if (auth && metrics(req, res, auth.principal)) return;
    // A GraphQL JSON body is read and parsed here, cheaper than through yoga's web streams (http/jsonBody.ts).
    if (req.method === 'POST' && Number(req.headers['content-length']) > 0 && isJsonContentType(req.headers['content-type']) && pathOf(req) === yoga.graphqlEndpoint) {
      if (!(await preparseJsonBody(req))) return;
    }
    await yoga(req, res, { principal: auth?.principal });
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (awsRequests(req, res) || open(req, res)) return;
    guarded(req, res).catch((error) => {
      logError(error);
      // Authenticating reads the database: while it restarts, say so, and that a retry will do.
      if (isDatabaseUnavailable(error)) refuse(res, 503, 'UNAVAILABLE', 'The database is unavailable (restarting or unreachable); retry the request shortly.', { 'retry-after': '1' });
      else refuse(res, 500, 'INTERNAL', 'Internal error; the server log has the details.');
    });
  };
  // node's headersTimeout (60 s) may not exceed the request timeout it is part of.
  const server = createServer({ requestTimeout: limits.requestTimeoutMs, headersTimeout: Math.min(60_000, limits.requestTimeoutMs) }, handle);
  // node:http2's compatibility request/response carry what these handlers use.
  // Session memory above node's 10 MB default: a GetRecords response may carry 10 MiB of data.
  const http2Server = createHttp2Server({ maxSessionMemory: 64 }, (req: Http2ServerRequest, res: Http2ServerResponse) => {
    limitRequestTime(req, res, limits.requestTimeoutMs);
    handle(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
  // An HTTP/2 session that carries no frame for the request timeout is closed (GOAWAY; streams
  // still open finish first), as node's HTTP/1.1 server drops an idle keep-alive connection:
  // else a client that sends the preface and nothing more holds its session forever.
  http2Server.on('session', (session) => {
    if (limits.requestTimeoutMs > 0) session.setTimeout(limits.requestTimeoutMs, () => session.close());
  });
  const protocols = serveH2c(server, http2Server);
  // maxPayload: a WebSocket message is held to the request body limit too (ws's default is 100 MiB).
  const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint, WebSocket: BatchedWebSocket, maxPayload: limits.maxBodyBytes });
  const guard = new SubscriptionGuard(engine, limits.maxSubscriptionsPerConnection);
  const wsDisposable = useServer(
    {
      execute: (args: { rootValue: { execute: (a: unknown) => unknown } }) => args.rootValue.execute(args),
      subscribe: (args: { rootValue: { subscribe: (a: unknown) => unknown } }) => args.rootValue.subscribe(args),
      onConnect: guard.onConnect,
      onClose: guard.onClose,
      onSubscribe: async (ctx: WsContext<Record<string, unknown>, Extra>, id: string, payload: SubscribePayload) => {
        const admitted = guard.admit(ctx);
        if (admitted.errors) return admitted.errors;
        const { schema: envelopedSchema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          subscriptionId: id, // with socket, where shared results are written (sharedSubscriptionExecution.ts)
          params: payload,
          principal: admitted.principal,
        });
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          if (error instanceof GraphQLError) return [withContractCode(error)];
          throw error;
        }
        const args = {
          schema: envelopedSchema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables ?? undefined,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors.map(withContractCode);
        return args;
      },
    } as Parameters<typeof useServer>[0],
    wsServer,
  );

  return {
    server,
    http2Server,
    start: (port, host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const address = server.address() as AddressInfo;
          const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          resolve(`http://${shown}:${address.port}${yoga.graphqlEndpoint}`);
        });
      }),
    stop: async () => {
      guard.dispose();
      await wsDisposable.dispose();
      for (const client of wsServer.clients) client.terminate();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
      protocols.closeAll();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
