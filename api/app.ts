/**
 * buildApp(): graphql-yoga over HTTP and graphql-ws subscriptions on the same port and path,
 * in front of an engine. start()/stop() for the server entry point and for tests.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Context as WsContext, SubscribePayload } from 'graphql-ws';
import { type Extra, useServer } from 'graphql-ws/use/ws';
import { GraphQLError } from 'graphql';
import { createYoga } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import type { Engine } from '../engine/engine.ts';
import type { Context } from './builder.ts';
import { type ErrorLogger, createMaskError, useContractErrorCodes, withContractCode } from './errors.ts';
import { httpRoutes } from './http/routes.ts';
import { schema } from './schema.ts';

export interface AppOptions {
  engine: Engine;
  /** Where unexpected errors are reported. (Default: console.error) */
  logError?: ErrorLogger;
}

export interface App {
  server: Server;
  /** Listens; resolves with the URL of the GraphQL endpoint. */
  start(port: number, host: string): Promise<string>;
  stop(): Promise<void>;
}

export function buildApp({ engine, logError = (e) => console.error('shardline: unexpected error', e) }: AppOptions): App {
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
  // /metrics, /healthz and /readyz are answered in front of yoga (api/http/).
  const routes = httpRoutes(engine, logError);
  const server = createServer((req, res) => {
    if (!routes(req, res)) void yoga(req, res);
  });
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
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
