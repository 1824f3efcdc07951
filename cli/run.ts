/**
 * The scripting commands of `shardline`: they speak to a running server over GraphQL only.
 * Parses the arguments, runs the command and turns what it throws into a message on stderr
 * and an exit code (see EXIT in errors.ts).
 */
import { Reader, helpOf, parseCommand, usageOf } from './args.ts';
import type { Command } from './command.ts';
import { CliError, EXIT, UsageError } from './errors.ts';
import { GraphQLClient } from './graphqlClient.ts';

export const CLIENT_COMMANDS = ['replay', 'seek', 'redrive', 'lag', 'tail', 'put', 'capture'] as const;
export type ClientCommandName = (typeof CLIENT_COMMANDS)[number];

async function load(name: ClientCommandName): Promise<Command> {
  switch (name) {
    case 'replay': return (await import('./commands/replay.ts')).replay;
    case 'seek': return (await import('./commands/seek.ts')).seek;
    case 'redrive': return (await import('./commands/redrive.ts')).redrive;
    case 'lag': return (await import('./commands/lag.ts')).lag;
    case 'tail': return (await import('./commands/tail.ts')).tail;
    case 'put': return (await import('./commands/put.ts')).put;
    case 'capture': return (await import('./commands/capture.ts')).capture;
  }
}

export function isClientCommand(name: string | undefined): name is ClientCommandName {
  return (CLIENT_COMMANDS as readonly string[]).includes(name ?? '');
}

/** Runs one scripting command; resolves with its exit code (it never throws). */
export async function runClientCommand(name: ClientCommandName, argv: string[]): Promise<number> {
  const command = await load(name);
  try {
    const parsed = parseCommand(command.spec, argv);
    if (parsed.help) {
      process.stdout.write(`${helpOf(command.spec)}\n`);
      return EXIT.OK;
    }
    const client = new GraphQLClient({ url: parsed.common.url, token: parsed.common.token });
    return await command.run({ client, json: parsed.common.json, args: new Reader(command.spec, parsed.values) });
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`shardline ${name}: ${error.message}\n${error.usage ?? usageOf(command.spec)}\n(shardline ${name} --help for more)\n`);
      return error.exitCode;
    }
    if (error instanceof CliError) {
      process.stderr.write(`shardline ${name}: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`shardline ${name}: unexpected error: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    return EXIT.INTERNAL;
  }
}
