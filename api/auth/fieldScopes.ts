/**
 * Which scope each root field needs, checked in one place: every Query, Mutation and
 * Subscription field of the served schema is wrapped with a check of the request's principal.
 * Queries and subscriptions need `read` (tokens: `admin`); a mutation not listed here needs
 * `admin`, so a new mutation is closed until it is classified.
 *
 * A mutation's root fields are also checked all together before any of them runs
 * (useMutationScopes): a request mixing an allowed write with a forbidden one is refused whole,
 * rather than writing the first and answering only the refusal (which a client would retry).
 */
import {
  type GraphQLFieldResolver, type GraphQLObjectType, type GraphQLSchema, GraphQLError, getArgumentValues, getOperationAST, getVariableValues,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { rootFields } from '../rootFields.ts';
import type { Engine } from '../../engine/engine.ts';
import { hasScope, type Principal, type Scope } from '../../engine/auth/scopes.ts';
import { ShardlineError } from '../../engine/errors.ts';

type Rule = Scope | ((args: Record<string, any>) => Scope);

export const QUERY_SCOPES: Record<string, Rule> = { apiTokens: 'admin' };

export const MUTATION_SCOPES: Record<string, Rule> = {
  putRecords: 'produce',
  writeItems: 'produce',
  importRecords: 'produce',
  startReplay: 'operate',
  pauseReplay: 'operate',
  resumeReplay: 'operate',
  cancelReplay: 'operate',
  redriveFailures: 'operate',
  seekEventSourceMapping: 'operate',
  restoreCheckpoints: 'operate',
  createAlertRule: 'operate',
  deleteAlertRule: 'operate',
  // Enabling or disabling a mapping is an operator's action; changing its settings is an admin's.
  updateEventSourceMapping: (args) => {
    const keys = Object.keys(args.input ?? {}).filter((k) => args.input[k] !== undefined);
    return keys.length > 0 && keys.every((k) => k === 'enabled') ? 'operate' : 'admin';
  },
};

function forbidden(principal: Principal, field: string, scope: Scope): ShardlineError {
  return new ShardlineError('FORBIDDEN',
    `${field} needs the "${scope}" scope; token "${principal.name}" has ${principal.scopes.map((s) => `"${s}"`).join(', ')}.`);
}

/** The principal and the scope the field needs of it, or the error of a request without them. */
function requireScope(principal: Principal | undefined, field: string, rule: Rule, args: Record<string, any>): { principal: Principal; scope: Scope } {
  if (!principal) throw new ShardlineError('UNAUTHENTICATED', 'Authentication required.');
  const scope = typeof rule === 'function' ? rule(args) : rule;
  if (!hasScope(principal, scope)) throw forbidden(principal, field, scope);
  return { principal, scope };
}

function check(context: { principal?: Principal; engine?: Engine } | undefined, field: string, rule: Rule, args: Record<string, any>): void {
  const { principal, scope } = requireScope(context?.principal, field, rule, args);
  // Record writes take from the token's write rate limit (engine/auth/writeRateLimiter.ts).
  if (scope === 'produce') context!.engine?.writeLimiter.take(principal);
}

function guard(type: GraphQLObjectType | null | undefined, rules: Record<string, Rule>, fallback: Scope): void {
  if (!type) return;
  for (const field of Object.values(type.getFields())) {
    const rule: Rule = rules[field.name] ?? fallback;
    const name = `${type.name}.${field.name}`;
    if (field.subscribe) {
      const subscribe: GraphQLFieldResolver<unknown, unknown> = field.subscribe;
      field.subscribe = (root, args, context, info) => {
        check(context, name, rule, args);
        return subscribe(root, args, context, info);
      };
    } else if (field.resolve) {
      const resolve: GraphQLFieldResolver<unknown, unknown> = field.resolve;
      field.resolve = (root, args, context, info) => {
        check(context, name, rule, args);
        return resolve(root, args, context, info);
      };
    }
  }
}

/** Wraps the schema's root fields with their scope checks (in place; returns the schema). */
export function requireScopes(schema: GraphQLSchema): GraphQLSchema {
  guard(schema.getQueryType(), QUERY_SCOPES, 'read');
  guard(schema.getMutationType(), MUTATION_SCOPES, 'admin');
  guard(schema.getSubscriptionType(), {}, 'read');
  return schema;
}

/** The yoga plugin: a mutation runs only when its principal may run every one of its root fields. */
export function useMutationScopes(): Plugin {
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const operation = getOperationAST(args.document, args.operationName);
      const type = args.schema.getMutationType();
      if (operation?.operation !== 'mutation' || !type) return;
      const context = args.contextValue as { principal?: Principal } | undefined;
      // The variables as execution will see them (defaults applied); ones that do not coerce are
      // left for execution to report at the variable.
      const coerced = getVariableValues(args.schema, operation.variableDefinitions ?? [], args.variableValues ?? {});
      if (coerced.errors) return;
      try {
        for (const node of rootFields(operation.selectionSet, args.document)) {
          const field = type.getFields()[node.name.value];
          if (!field) continue; // validation refused it already
          const rule = MUTATION_SCOPES[field.name] ?? 'admin';
          const values = typeof rule === 'function' ? getArgumentValues(field, node, coerced.coerced) : {};
          requireScope(context?.principal, `Mutation.${field.name}`, rule, values);
        }
      } catch (error) {
        if (!(error instanceof ShardlineError)) throw error;
        setResultAndStopExecution({ data: null, errors: [new GraphQLError(error.message, { extensions: { code: error.code } })] });
      }
    },
  };
}
