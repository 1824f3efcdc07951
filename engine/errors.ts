/**
 * Errors are typed values with a code. api/ maps them to GraphQL errors in one place;
 * anything that is not a ShardlineError is masked as INTERNAL there.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'LIMIT_EXCEEDED'
  | 'STREAM_NOT_FOUND'
  | 'STREAM_EXISTS'
  | 'SHARD_NOT_FOUND'
  | 'SHARD_CLOSED'
  | 'FUNCTION_NOT_FOUND'
  | 'FUNCTION_EXISTS'
  | 'MAPPING_NOT_FOUND'
  | 'REPLAY_NOT_FOUND'
  | 'FAILURE_NOT_FOUND'
  | 'CAPTURE_NOT_FOUND'
  | 'CONFLICT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_IMPLEMENTED'
  | 'INTERNAL';

export class ShardlineError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ShardlineError';
  }
}

export const invalidArgument = (message: string) => new ShardlineError('INVALID_ARGUMENT', message);
export const limitExceeded = (message: string) => new ShardlineError('LIMIT_EXCEEDED', message);
export const streamNotFound = (name: string) =>
  new ShardlineError('STREAM_NOT_FOUND', `Stream "${name}" does not exist.`);
export const notImplemented = (what: string) =>
  new ShardlineError('NOT_IMPLEMENTED', `${what} is not implemented yet in this version of shardline.`);

/** Normalises whatever was thrown into an Error. */
export function coerceError(raw: unknown): Error {
  if (raw instanceof Error) return raw;
  return new Error(typeof raw === 'string' ? raw : JSON.stringify(raw));
}
