import { defineConfig } from 'drizzle-kit';

// Only generates SQL from engine/schema.ts; no database credentials are needed.
export default defineConfig({
  dialect: 'postgresql',
  schema: './engine/schema.ts',
  out: './migrations',
});
