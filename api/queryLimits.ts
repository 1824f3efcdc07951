/**
 * GraphQL query limits (depth, cost, aliases) as validation rules, so they apply alike to HTTP
 * requests and graphql-ws subscriptions (both validate through yoga's envelop). The rules are
 * GraphQL Armor's; a rejection is reported as a LIMIT_EXCEEDED validation error naming the
 * limit and its setting, and nothing is executed.
 */
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { GraphQLError, type ValidationContext, type ValidationRule } from 'graphql';
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

export function queryLimitRules(limits: Pick<Limits, 'maxQueryDepth' | 'maxQueryCost' | 'maxAliases'>): ValidationRule[] {
  return [
    limitRule(maxDepthRule as ArmorRule, { n: limits.maxQueryDepth, ignoreIntrospection: true, flattenFragments: true }, 'SHARDLINE_MAX_QUERY_DEPTH'),
    limitRule(costLimitRule as ArmorRule, { maxCost: limits.maxQueryCost, ignoreIntrospection: true }, 'SHARDLINE_MAX_QUERY_COST'),
    limitRule(maxAliasesRule as ArmorRule, { n: limits.maxAliases }, 'SHARDLINE_MAX_ALIASES'),
  ];
}

type Parse = (source: unknown, options?: unknown) => unknown;

/** Envelop plugin adding the rules to every validation. */
export function useQueryLimits(limits: Limits) {
  const rules = queryLimitRules(limits);
  return {
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
