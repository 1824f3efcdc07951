/** The page size of every list and connection: `first` between 1 and MAX_PAGE_SIZE. */
import { invalidArgument, limitExceeded } from './errors.ts';

export const MAX_PAGE_SIZE = 1000;

/** Returns `first`, or throws INVALID_ARGUMENT (below 1, not an integer) / LIMIT_EXCEEDED (above the maximum). */
export function pageSize(first: number, max = MAX_PAGE_SIZE): number {
  if (!Number.isInteger(first) || first < 1) throw invalidArgument(`first must be between 1 and ${max}, got ${first}.`);
  if (first > max) throw limitExceeded(`first must be at most ${max}, got ${first}.`);
  return first;
}
