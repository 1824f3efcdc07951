/**
 * The Pothos schema builder and the request context. No GraphQL types are defined here:
 * each lives in api/types/<type>.ts and api/schema.ts imports them all.
 */
import SchemaBuilder from '@pothos/core';
import type { Principal } from '../engine/auth/scopes.ts';
import type { Engine } from '../engine/engine.ts';

export interface Context {
  engine: Engine;
  /** Who the request acts as; its name is the audit log's actor (api/auth/). */
  principal: Principal;
}

export const builder = new SchemaBuilder<{
  Context: Context;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
    ID: { Input: string; Output: string | number };
  };
}>({ defaultFieldNullability: false });

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
