// drizzle-kit config for the PostgreSQL backend: `npx drizzle-kit generate --config drizzle.config.postgres.ts`
import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/store/schema.ts',
  out: './drizzle/postgres',
})
