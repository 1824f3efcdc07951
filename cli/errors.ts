/**
 * Exit codes of the scripting commands, and the errors that carry them. A command throws one
 * of these; cli/run.ts prints its message on stderr and exits with its code.
 */
export const EXIT = {
  OK: 0,
  /** an unexpected fault in the CLI itself */
  INTERNAL: 1,
  /** a bad argument or bad input: the usage message names the option */
  USAGE: 2,
  /** the operation ran but did not fully succeed: a job FAILED or was CANCELLED (--wait), records failed (put) */
  FAILED: 3,
  /** no shardline server answered at the URL */
  UNREACHABLE: 4,
  /** the server answered with a GraphQL error */
  GRAPHQL: 5,
} as const;

export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A bad argument; `usage` is printed after the message. */
export class UsageError extends CliError {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(EXIT.USAGE, message);
  }
}

export class UnreachableError extends CliError {
  constructor(url: string, detail: string) {
    super(EXIT.UNREACHABLE, `cannot reach shardline at ${url}: ${detail}`);
  }
}

export interface GraphQLErrorShape {
  message: string;
  path?: readonly (string | number)[];
  extensions?: { code?: string; [key: string]: unknown };
}

/** The server answered with errors: the message leads with each error's extensions.code. */
export class GraphQLResponseError extends CliError {
  readonly errors: GraphQLErrorShape[];
  constructor(errors: GraphQLErrorShape[]) {
    super(EXIT.GRAPHQL, errors.map((e) => `${e.extensions?.code ?? 'ERROR'}: ${e.message}`).join('\n'));
    this.errors = errors;
  }

  get code(): string | undefined {
    return this.errors[0]?.extensions?.code;
  }
}
