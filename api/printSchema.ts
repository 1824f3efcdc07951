/** `npm run schema:print`: writes the served schema to api/schema.graphql (committed; a test checks it is fresh). */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { printSchema } from 'graphql';
import { schema } from './schema.ts';

export const SCHEMA_FILE = fileURLToPath(new URL('./schema.graphql', import.meta.url));
export const printServedSchema = () => `${printSchema(schema)}\n`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SCHEMA_FILE, printServedSchema());
  console.log(`wrote ${SCHEMA_FILE}`);
}
