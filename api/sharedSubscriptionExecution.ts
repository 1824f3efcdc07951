/**
 * Subscription events executed once for every subscriber of the same operation. The feeds
 * (engine/observability/) hand the same event object to each of their subscribers; this yoga
 * plugin executes an event once per (operation text, operation name, variables, principal)
 * instead of once per subscriber, so a thousand dashboards watching `lag` cost one execution
 * per update, not a thousand. Results are shared: nothing downstream may change them (graphql-ws
 * and the error masking copy before they change anything).
 *
 * Only the per-event execution changes: the source stream is created as before, and when
 * creating it fails, the executor the plugin replaced answers, so errors look as they always did.
 */
import { type DocumentNode, type ExecutionArgs, type ExecutionResult, GraphQLError, createSourceEventStream, execute, getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';

type Result = ExecutionResult | Promise<ExecutionResult>;

/** Per event object, its executions by operation key; an event's results go when the event does. */
const executions = new WeakMap<object, Map<string, Result>>();

/** What an event's result depends on besides the event; undefined when the operation text is unknown. */
function operationKey(args: ExecutionArgs): string | undefined {
  const text = args.document.loc?.source.body;
  if (text === undefined) return undefined;
  const principal = (args.contextValue as { principal?: unknown } | undefined)?.principal ?? null;
  return JSON.stringify([text, args.operationName ?? null, args.variableValues ?? null, principal]);
}

const isAsyncIterable = (value: unknown): value is AsyncIterable<unknown> =>
  typeof value === 'object' && value !== null && Symbol.asyncIterator in value;

/** A stream's failure as the executor reports it: a GraphQLError of the operation, the cause kept. */
function streamError(error: unknown, document: DocumentNode, operationName: string | null | undefined): GraphQLError {
  if (error instanceof GraphQLError) return error;
  const cause = error instanceof Error ? error : new Error(String(error));
  return new GraphQLError(cause.message, { originalError: cause, nodes: getOperationAST(document, operationName) ?? undefined });
}

async function subscribeSharing(
  args: ExecutionArgs,
  fallback: (args: ExecutionArgs) => unknown,
): Promise<unknown> {
  const source = await createSourceEventStream(args);
  if (!isAsyncIterable(source)) return fallback(args);
  const events = source[Symbol.asyncIterator]();
  const key = operationKey(args);
  const executeEvent = (event: unknown): Result => {
    if (key === undefined || typeof event !== 'object' || event === null) return execute({ ...args, rootValue: event });
    let byOperation = executions.get(event);
    if (!byOperation) executions.set(event, (byOperation = new Map()));
    let result = byOperation.get(key);
    if (!result) byOperation.set(key, (result = execute({ ...args, rootValue: event })));
    return result;
  };
  const results: AsyncIterableIterator<ExecutionResult> = {
    [Symbol.asyncIterator]: () => results,
    next: async () => {
      let step: IteratorResult<unknown>;
      try {
        step = await events.next();
      } catch (error) {
        throw streamError(error, args.document, args.operationName);
      }
      if (step.done) return { value: undefined, done: true };
      return { value: await executeEvent(step.value), done: false };
    },
    return: async () => {
      await events.return?.();
      return { value: undefined, done: true };
    },
    throw: async (error?: unknown) => {
      await events.return?.();
      throw error;
    },
  };
  return results;
}

/** The yoga plugin: subscriptions execute each shared event once per distinct operation. */
export function useSharedSubscriptionExecution(): Plugin {
  return {
    onSubscribe({ subscribeFn, setSubscribeFn }) {
      setSubscribeFn(((args: ExecutionArgs) => subscribeSharing(args, subscribeFn as (a: ExecutionArgs) => unknown)) as typeof subscribeFn);
    },
  };
}
