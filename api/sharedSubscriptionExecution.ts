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
 *
 * Over graphql-ws, a result without errors is also serialised once for all its subscribers and
 * written straight to each socket as the `next` message graphql-ws would have sent (the same
 * bytes), inside the iterator's next(): graphql-ws still owns the subscription (complete,
 * return(), errors) and still sends what has errors, so the error masking applies to those, and
 * order holds because graphql-ws asks for the next result only after sending the previous one.
 * This skips, per subscriber and message, the result hooks, the message validation and a
 * JSON.stringify of the payload: a thousand subscribers cost a thousand writes of one string.
 * Where the feed takes a sink (engine/observability/cancellable.ts), an event reaching an idle
 * subscriber is even executed and written synchronously, as the feed pushes it, with no promise
 * per subscriber; whatever the sink refuses (an execution that is not synchronous, errors, a
 * socket past its high-water mark) goes the iterator's way, in order.
 */
import { type DocumentNode, type ExecutionArgs, type ExecutionResult, GraphQLError, createSourceEventStream, execute, getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { type EventSink, type SinkableIterator, attachSink } from '../engine/observability/cancellable.ts';
import { BatchedWebSocket, HIGH_WATER } from './batchedWebSocket.ts';

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

/** Per shared result, its JSON: serialised once whatever the number of subscribers. */
const serialized = new WeakMap<object, string>();

function jsonOf(result: ExecutionResult): string {
  let json = serialized.get(result);
  if (json === undefined) serialized.set(result, (json = JSON.stringify(result)));
  return json;
}

/** Where a graphql-ws subscription's messages go: set by the server's onSubscribe (api/app.ts). */
interface DirectTarget { socket: BatchedWebSocket; subscriptionId: string }

function directTarget(context: unknown): { socket: BatchedWebSocket; prefix: string } | undefined {
  const { socket, subscriptionId } = (context ?? {}) as Partial<DirectTarget>;
  if (!(socket instanceof BatchedWebSocket) || typeof subscriptionId !== 'string') return undefined;
  return { socket, prefix: `{"id":${JSON.stringify(subscriptionId)},"type":"next","payload":` };
}

const isPromise = (value: unknown): value is Promise<unknown> => typeof (value as { then?: unknown } | null)?.then === 'function';

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
  const direct = directTarget(args.contextValue);
  let ended = false;
  const send = (result: ExecutionResult) => direct!.socket.sendText(`${direct!.prefix}${jsonOf(result)}}`);
  const sinkable = direct && attachSink in events ? (events as SinkableIterator<unknown>) : undefined;
  const sink: EventSink<unknown> = (event) => {
    if (ended || direct!.socket.readyState !== BatchedWebSocket.OPEN || direct!.socket.bufferedAmount >= HIGH_WATER) return false;
    try {
      const result = executeEvent(event);
      if (isPromise(result) || result.errors) return false;
      send(result);
      return true;
    } catch {
      return false; // the iterator's way reports it as before
    }
  };
  const results: AsyncIterableIterator<ExecutionResult> = {
    [Symbol.asyncIterator]: () => results,
    next: async () => {
      for (;;) {
        sinkable?.[attachSink](sink); // idle from here until an event comes the iterator's way
        let step: IteratorResult<unknown>;
        try {
          step = await events.next();
        } catch (error) {
          throw streamError(error, args.document, args.operationName);
        }
        sinkable?.[attachSink](undefined);
        if (step.done) return { value: undefined, done: true };
        const result = await executeEvent(step.value);
        if (!direct || ended || result.errors || direct.socket.readyState !== BatchedWebSocket.OPEN) return { value: result, done: false };
        const written = send(result);
        if (written) await written; // a socket that does not keep up holds only its own subscriptions
      }
    },
    return: async () => {
      ended = true;
      await events.return?.();
      return { value: undefined, done: true };
    },
    throw: async (error?: unknown) => {
      ended = true;
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
