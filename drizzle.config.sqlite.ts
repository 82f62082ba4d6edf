// drizzle-kit config for the embedded SQLite backend: `npx drizzle-kit generate --config drizzle.config.sqlite.ts`
import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/store/schema.ts',
  out: './drizzle/sqlite',
})
