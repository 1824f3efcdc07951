/**
 * GraphQL query limits (depth, cost, aliases) as validation rules, so they apply alike to HTTP
 * requests and graphql-ws subscriptions (both validate through yoga's envelop). The rules are
 * GraphQL Armor's; a rejection is reported as a LIMIT_EXCEEDED validation error naming the
 * limit and its setting, and nothing is executed.
 *
 * The cost rule multiplies by a page size only when it is written in the document: `first: $n`
 * would count as 1. So an operation with variables has its cost counted again before it runs,
 * with the variables' values (or defaults) written into the document. Introspection, outside
 * depth and cost, is held to one `__schema` per operation run.
 */
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import {
  type DocumentNode, GraphQLError, Kind, type ValidationContext, type ValidationRule, type ValueNode, type VariableDefinitionNode,
  getOperationAST, validate, visit,
} from 'graphql';
import { rootFields } from './rootFields.ts';
import type { Limits } from '../engine/config.ts';

type ArmorRule = (options: Record<string, unknown>) => ValidationRule;

function limitRule(rule: ArmorRule, options: Record<string, unknown>, setting: string): ValidationRule {
  return (context: ValidationContext) => rule({
    ...options,
    exposeLimits: true,
    propagateOnRejection: false,
    onReject: [(_ctx: ValidationContext | null, error: GraphQLError) => {
      const message = error.message.replace(/^Syntax Error: /, '');
      context.reportError(new GraphQLError(`${message} (${setting})`, { extensions: { code: 'LIMIT_EXCEEDED' } }));
    }],
  })(context);
}

const costRule = (limits: Pick<Limits, 'maxQueryCost'>) =>
  limitRule(costLimitRule as ArmorRule, { maxCost: limits.maxQueryCost, ignoreIntrospection: true }, 'SHARDLINE_MAX_QUERY_COST');

export function queryLimitRules(limits: Pick<Limits, 'maxQueryDepth' | 'maxQueryCost' | 'maxAliases'>): ValidationRule[] {
  return [
    limitRule(maxDepthRule as ArmorRule, { n: limits.maxQueryDepth, ignoreIntrospection: true, flattenFragments: true }, 'SHARDLINE_MAX_QUERY_DEPTH'),
    costRule(limits),
    limitRule(maxAliasesRule as ArmorRule, { n: limits.maxAliases }, 'SHARDLINE_MAX_ALIASES'),
  ];
}

/**
 * A literal for a variable's value, as far as the cost rule reads it: a number (a page size) is
 * written in; anything else counts for nothing there and becomes null (no walk of its contents,
 * which may nest deeper than a stack).
 */
function literal(value: unknown): ValueNode {
  if (typeof value === 'number') return Number.isInteger(value) ? { kind: Kind.INT, value: String(value) } : { kind: Kind.FLOAT, value: String(value) };
  return { kind: Kind.NULL };
}

/** The document with each variable replaced by its value (or its default), as the cost rule can count it. */
function withVariablesWritten(document: DocumentNode, values: Record<string, unknown>): DocumentNode {
  const defaults = new Map<string, ValueNode>();
  visit(document, {
    VariableDefinition(node: VariableDefinitionNode) {
      if (node.defaultValue) defaults.set(node.variable.name.value, node.defaultValue);
    },
  });
  return visit(document, {
    VariableDefinition: () => null,
    Variable(node) {
      const name = node.name.value;
      return Object.hasOwn(values, name) ? literal(values[name]) : (defaults.get(name) ?? { kind: Kind.NULL });
    },
  });
}

type Parse = (source: unknown, options?: unknown) => unknown;

/** Envelop plugin adding the rules to every validation. */
export function useQueryLimits(limits: Limits) {
  const rules = queryLimitRules(limits);
  const cost = costRule(limits);
  type Args = { schema: Parameters<typeof validate>[0]; document: DocumentNode; operationName?: string | null; variableValues?: Record<string, unknown> | null };
  const beforeRunning = ({ args, setResultAndStopExecution }: { args: Args; setResultAndStopExecution: (r: never) => void }) => {
    const operation = getOperationAST(args.document, args.operationName);
    if (!operation) return;
    // Introspection is outside the depth and cost limits (a client's introspection query is
    // deep by design), so it is bounded here: one __schema per operation run. Thirty aliases of
    // it made a 14 MB answer that held the server for seconds.
    const schemas = rootFields(operation.selectionSet, args.document).filter((f) => f.name.value === '__schema');
    if (schemas.length > 1) {
      setResultAndStopExecution({
        errors: [new GraphQLError('An operation may introspect the schema (__schema) once.', { nodes: schemas[1], extensions: { code: 'LIMIT_EXCEEDED' } })],
      } as never);
      return;
    }
    // A variable (or its default) may hold a page size: costed again with the values written in.
    if ((operation.variableDefinitions ?? []).length === 0) return;
    const errors = validate(args.schema, withVariablesWritten(args.document, args.variableValues ?? {}), [cost]);
    if (errors.length > 0) setResultAndStopExecution({ errors } as never);
  };
  return {
    onExecute: beforeRunning,
    onSubscribe: beforeRunning,
    // graphql-js parses nested lists and objects recursively: a literal nested some thousands
    // deep exhausts the stack before any rule can count its depth. That is a limit, not a fault.
    onParse({ parseFn, setParseFn }: { parseFn: Parse; setParseFn: (fn: Parse) => void }) {
      setParseFn((source, options) => {
        try {
          return parseFn(source, options);
        } catch (error) {
          if (!(error instanceof RangeError)) throw error;
          throw new GraphQLError('The document nests too deeply to parse (lists and objects within one another).', {
            extensions: { code: 'LIMIT_EXCEEDED' },
          });
        }
      });
    },
    onValidate({ addValidationRule }: { addValidationRule: (rule: ValidationRule) => void }) {
      for (const rule of rules) addValidationRule(rule);
    },
  };
}
