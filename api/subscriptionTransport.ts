/**
 * Subscriptions are served over graphql-ws only. There the connection is authenticated once and
 * watched (api/auth/subscriptionGuard.ts): a revoked token closes its subscriptions, and a
 * connection holds a bounded number of them. A subscription sent as a plain HTTP request
 * (server-sent events, which yoga would otherwise serve) would escape both, so it is refused,
 * pointing at the WebSocket.
 */
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** The yoga plugin: a subscription that did not come over graphql-ws is refused before it starts. */
export function useSubscriptionsOverWebSocketOnly(endpoint: string): Plugin {
  return {
    onSubscribe({ args, setResultAndStopExecution }) {
      // The graphql-ws server (api/app.ts) puts the subscription's id in the context; HTTP never does.
      if ((args.contextValue as { subscriptionId?: unknown } | undefined)?.subscriptionId !== undefined) return;
      setResultAndStopExecution({
        errors: [new GraphQLError(`Subscriptions are served over graphql-ws (a WebSocket at ${endpoint}), not over plain HTTP.`, {
          extensions: { code: 'INVALID_ARGUMENT' },
        })],
      });
    },
  };
}
