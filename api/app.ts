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
import type { Engine } from '../engine/engine.ts';
import type { Context } from './builder.ts';
import { type ErrorLogger, createMaskError, useContractErrorCodes, withContractCode } from './errors.ts';
import type { AwsApiOptions } from './aws/context.ts';
import { awsApi } from './aws/service.ts';
import { serveH2c } from './http/h2c.ts';
import { httpRoutes } from './http/routes.ts';
import { schema } from './schema.ts';

export interface AppOptions {
  engine: Engine;
  /** Where unexpected errors are reported. (Default: console.error) */
  logError?: ErrorLogger;
  /** Settings of the AWS wire APIs (iterator lifetimes, clock …). */
  aws?: AwsApiOptions;
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

export function buildApp({ engine, logError = (e) => console.error('shardline: unexpected error', e), aws = {} }: AppOptions): App {
  const context: Context = { engine };
  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    context: () => context,
    graphiql: { subscriptionsProtocol: 'WS' },
    landingPage: false,
    maskedErrors: { maskError: createMaskError(logError) },
    logging: false,
    plugins: [useContractErrorCodes()],
  });
  // AWS API calls (an X-Amz-Target) and /metrics, /healthz and /readyz are answered in front of yoga.
  const awsRequests = awsApi(engine, aws, logError);
  const routes = httpRoutes(engine, logError);
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (!awsRequests(req, res) && !routes(req, res)) void yoga(req, res);
  };
  const server = createServer(handle);
  // node:http2's compatibility request/response carry what these handlers use.
  // Session memory above node's 10 MB default: a GetRecords response may carry 10 MiB of data.
  const http2Server = createHttp2Server({ maxSessionMemory: 64 }, (req: Http2ServerRequest, res: Http2ServerResponse) =>
    handle(req as unknown as IncomingMessage, res as unknown as ServerResponse));
  const protocols = serveH2c(server, http2Server);
  const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  const wsDisposable = useServer(
    {
      execute: (args: { rootValue: { execute: (a: unknown) => unknown } }) => args.rootValue.execute(args),
      subscribe: (args: { rootValue: { subscribe: (a: unknown) => unknown } }) => args.rootValue.subscribe(args),
      onSubscribe: async (ctx: WsContext<Record<string, unknown>, Extra>, _id: string, payload: SubscribePayload) => {
        const { schema: envelopedSchema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
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
      await wsDisposable.dispose();
      for (const client of wsServer.clients) client.terminate();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
      protocols.closeAll();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
