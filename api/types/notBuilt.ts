/**
 * Contract fields whose capability has not been built yet: they exist in the served schema
 * (so the schema stays a compatible superset of the contract) and raise NOT_IMPLEMENTED,
 * never made-up data.
 */
import { notImplemented } from '../../engine/errors.ts';

/** Shape of objects of a type whose resolvers are not built yet (no instance is ever made). */
// biome-ignore lint: any keeps expose() calls of not-yet-built types short
export type Unbuilt = Record<string, any>;

export const notBuilt = (what: string) => (): never => {
  throw notImplemented(what);
};
