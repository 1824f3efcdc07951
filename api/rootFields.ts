/**
 * The root fields an operation selects, through inline fragments and fragment spreads (each
 * fragment once). Directives are not evaluated: a field under @skip counts too, which only ever
 * makes the checks that use this list (scopes, introspection) stricter.
 */
import { type DocumentNode, type FieldNode, Kind, type SelectionSetNode } from 'graphql';

export function rootFields(selectionSet: SelectionSetNode, document: DocumentNode, seen = new Set<string>()): FieldNode[] {
  const fields: FieldNode[] = [];
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) fields.push(selection);
    else if (selection.kind === Kind.INLINE_FRAGMENT) fields.push(...rootFields(selection.selectionSet, document, seen));
    else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      const fragment = document.definitions.find((d) => d.kind === Kind.FRAGMENT_DEFINITION && d.name.value === selection.name.value);
      if (fragment?.kind === Kind.FRAGMENT_DEFINITION) fields.push(...rootFields(fragment.selectionSet, document, seen));
    }
  }
  return fields;
}
