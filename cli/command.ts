/** What a scripting command is: its argument spec and a run() that returns the exit code. */
import type { CommandSpec, Reader } from './args.ts';
import type { GraphQLClient } from './graphqlClient.ts';

export interface CommandContext {
  client: GraphQLClient;
  /** --json: machine-readable JSON on stdout */
  json: boolean;
  args: Reader;
}

export interface Command {
  spec: CommandSpec;
  run(context: CommandContext): Promise<number>;
}
