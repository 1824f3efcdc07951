/**
 * Postgres text and jsonb cannot hold a NUL character (\u0000), so no argument carrying one can
 * be stored or looked up. Caught where Postgres refuses it, the error could name no argument;
 * checked here before execution, it names the first one that holds a NUL (an argument of the
 * document, or a place in a variable), and nothing runs. The walk is iterative: no input can
 * exhaust the stack here.
 */
import { type ArgumentNode, type DocumentNode, GraphQLError, Kind, type ValueNode, visit } from 'graphql';
import type { Plugin } from 'graphql-yoga';

const NUL = '\u0000';

/** True when a NUL is anywhere in the value: the common answer, found without building paths. */
function holdsNul(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (v.includes(NUL)) return true;
    } else if (Array.isArray(v)) {
      for (const child of v) stack.push(child);
    } else if (v !== null && typeof v === 'object') {
      for (const key in v) {
        if (key.includes(NUL)) return true;
        stack.push((v as Record<string, unknown>)[key]);
      }
    }
  }
  return false;
}

/** Where a variable's value holds a NUL first: `$records[3].partitionKey`, or undefined. */
function nulInValue(value: unknown, path: string): string | undefined {
  if (!holdsNul(value)) return undefined;
  const stack: [unknown, string][] = [[value, path]];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      if (v.includes(NUL)) return at;
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${at}[${i}]`]);
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        if (key.includes(NUL)) return `${at} (a key)`;
        stack.push([child, `${at}.${key}`]);
      }
    }
  }
  return undefined;
}

/** Where a literal holds a NUL first, or undefined; variables inside it are checked with the variables. */
function nulInLiteral(node: ValueNode, path: string): string | undefined {
  const stack: [ValueNode, string][] = [[node, path]];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (v.kind === Kind.STRING && v.value.includes(NUL)) return at;
    if (v.kind === Kind.LIST) for (let i = v.values.length - 1; i >= 0; i--) stack.push([v.values[i]!, `${at}[${i}]`]);
    if (v.kind === Kind.OBJECT) for (const f of [...v.fields].reverse()) stack.push([f.value, `${at}.${f.name.value}`]);
  }
  return undefined;
}

function findNul(document: DocumentNode, variables: Record<string, unknown> | null | undefined): string | undefined {
  if (variables) {
    for (const [name, value] of Object.entries(variables)) {
      const at = nulInValue(value, `$${name}`);
      if (at) return `variable ${at}`;
    }
  }
  let found: string | undefined;
  visit(document, {
    Argument(node: ArgumentNode, _key, _parent, _path, ancestors) {
      if (found) return false;
      const field = [...ancestors].reverse().find((a) => !Array.isArray(a) && (a as { kind?: string }).kind === Kind.FIELD) as
        { name: { value: string } } | undefined;
      const at = nulInLiteral(node.value, `${field ? `${field.name.value}(` : ''}${node.name.value}`);
      if (at) found = `argument ${at}${field ? ')' : ''}`;
      return false;
    },
  });
  return found;
}

function refusal(where: string) {
  return {
    errors: [new GraphQLError(`The ${where} holds a NUL character (\\u0000), which shardline cannot store or look up.`, {
      extensions: { code: 'INVALID_ARGUMENT' },
    })],
  };
}

/** The yoga plugin: a request with a NUL in any argument is refused before it executes. */
export function useNulArgumentCheck(): Plugin {
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const where = findNul(args.document, args.variableValues as Record<string, unknown> | undefined);
      if (where) setResultAndStopExecution(refusal(where));
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const where = findNul(args.document, args.variableValues as Record<string, unknown> | undefined);
      if (where) setResultAndStopExecution(refusal(where));
    },
  };
}
