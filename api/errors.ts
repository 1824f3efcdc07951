/**
 * The one place where errors become GraphQL errors. Engine errors (ShardlineError) keep their
 * code and message; GraphQL's own input errors (validation, variable coercion) get
 * INVALID_ARGUMENT when they carry no code; anything else is an unexpected fault: it is logged
 * here and reaches the client as INTERNAL with no message detail and no stack trace.
 */
import { GraphQLError } from 'graphql';
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
    log(original);
    return new GraphQLError('Internal error; the server log has the details.', { ...location, extensions: { code: 'INTERNAL' } });
  };
}
