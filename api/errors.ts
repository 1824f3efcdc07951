/**
 * The one place where errors become GraphQL errors. Engine errors (ShardlineError) keep their
 * code and message; GraphQL's own input errors (validation, variable coercion) get
 * INVALID_ARGUMENT when they carry no code; a database that is restarting or out of reach is
 * UNAVAILABLE (retry); anything else is an unexpected fault: it is logged here and reaches the
 * client as INTERNAL with no message detail and no stack trace.
 */
import { GraphQLError } from 'graphql';
import { isDatabaseUnavailable, isUnstorableText } from '../engine/db.ts';
import { ShardlineError } from '../engine/errors.ts';

export type ErrorLogger = (error: unknown) => void;

export function createMaskError(log: ErrorLogger) {
  return function maskError(error: unknown, _message: string): Error {
    const graphqlError = error instanceof GraphQLError ? error : undefined;
    const original = graphqlError?.originalError ?? (graphqlError ? undefined : error);
    const location = { nodes: graphqlError?.nodes, path: graphqlError?.path };
    if (original instanceof ShardlineError) {
      return new GraphQLError(original.message, { ...location, extensions: { code: original.code } });
    }
    if (original instanceof GraphQLError) {
      const code = original.extensions.code ?? 'INVALID_ARGUMENT';
      return new GraphQLError(graphqlError!.message, { ...location, extensions: { code } });
    }
    if (graphqlError && original === undefined) {
      const code = graphqlError.extensions.code ?? 'INVALID_ARGUMENT';
      return new GraphQLError(graphqlError.message, { ...location, extensions: { ...graphqlError.extensions, code } });
    }
    if (isUnstorableText(original)) {
      // Postgres text cannot hold NUL: whichever argument carried one names nothing and can be stored nowhere.
      return new GraphQLError('A text argument holds a NUL character (\\u0000), which shardline cannot store or look up.', { ...location, extensions: { code: 'INVALID_ARGUMENT' } });
    }
    log(original);
    if (isDatabaseUnavailable(original)) {
      // Not a fault of the request: the database is restarting or out of reach, and a retry will do.
      return new GraphQLError('The database is unavailable (restarting or unreachable); retry the request shortly.', { ...location, extensions: { code: 'UNAVAILABLE' } });
    }
    return new GraphQLError('Internal error; the server log has the details.', { ...location, extensions: { code: 'INTERNAL' } });
  };
}

/** The codes of NOTES.md; GraphQL's own codes for a bad request become INVALID_ARGUMENT. */
const CONTRACT_CODES = new Set([
  'INVALID_ARGUMENT', 'LIMIT_EXCEEDED', 'STREAM_NOT_FOUND', 'STREAM_EXISTS', 'SHARD_NOT_FOUND', 'SHARD_CLOSED',
  'FUNCTION_NOT_FOUND', 'FUNCTION_EXISTS', 'MAPPING_NOT_FOUND', 'REPLAY_NOT_FOUND', 'FAILURE_NOT_FOUND', 'CAPTURE_NOT_FOUND', 'CONFLICT',
  'UNAUTHENTICATED', 'FORBIDDEN', 'NOT_IMPLEMENTED', 'INTERNAL', 'UNAVAILABLE',
]);

/** Gives a request error (parse, validation, variables) a contract code, keeping GraphQL's own as graphqlCode. */
export function withContractCode(error: GraphQLError): GraphQLError {
  const code = error.extensions?.code;
  if (typeof code === 'string' && CONTRACT_CODES.has(code)) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    path: error.path,
    extensions: { ...error.extensions, code: 'INVALID_ARGUMENT', ...(code ? { graphqlCode: code } : {}) },
  });
}

type ResultWithErrors = { errors?: readonly GraphQLError[] };

/** Yoga plugin: every error in a response carries one of the contract's codes. */
export function useContractErrorCodes() {
  return {
    onResultProcess({ result, setResult }: { result: unknown; setResult: (r: never) => void }) {
      if (!result || typeof result !== 'object' || Symbol.asyncIterator in result) return;
      const results = (Array.isArray(result) ? result : [result]) as ResultWithErrors[];
      if (!results.some((r) => r.errors?.length)) return;
      const mapped = results.map((r) => (r.errors?.length ? { ...r, errors: r.errors.map(withContractCode) } : r));
      setResult((Array.isArray(result) ? mapped : mapped[0]) as never);
    },
  };
}
