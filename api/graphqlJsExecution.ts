/**
 * Queries and mutations execute with graphql-js's `execute` instead of yoga's default
 * (@graphql-tools/executor). The latter copies every variable value (a null-prototype snapshot
 * of each input object) before coercing it: for a putRecords call of 500 records that copy is
 * a tenth of the server's CPU, and the JSON-parsed variables of a request need no such guard.
 * Nothing here uses what the tools executor adds (@defer/@stream, abort signals).
 * Subscriptions keep their own executor (api/sharedSubscriptionExecution.ts).
 *
 * A request whose variables do not coerce is answered as before: the tools executor marks
 * those errors with HTTP status 400, and so does this.
 */
import { type ExecutionArgs, type ExecutionResult, type GraphQLError, execute } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** Marks an error of a request that could not start executing as a 400, as the tools executor does. */
function asBadRequest(error: GraphQLError): GraphQLError {
  const http = (error.extensions?.http ?? {}) as Record<string, unknown>;
  Object.defineProperty(error, 'extensions', { value: { ...error.extensions, http: { ...http, status: 400 } } });
  return error;
}

function executeWithGraphqlJs(args: ExecutionArgs): ExecutionResult | Promise<ExecutionResult> {
  const result = execute(args);
  // A result without `data` is one whose execution never started (variables, operation).
  if (result instanceof Promise || 'data' in result) return result;
  return { ...result, errors: result.errors?.map(asBadRequest) };
}

/** The yoga plugin: queries and mutations run on graphql-js's executor. */
export function useGraphqlJsExecution(): Plugin {
  return {
    onExecute({ setExecuteFn }) {
      setExecuteFn(executeWithGraphqlJs as Parameters<typeof setExecuteFn>[0]);
    },
  };
}
