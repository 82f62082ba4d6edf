// ESLint (flat config): typescript-eslint and the import boundaries of docs/architecture.md.
// Import cycles are checked by dpdm (dpdm.config.json); `npm run lint` (scripts/lint.sh) runs both.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

/** A no-restricted-imports rule naming what a folder may not import, and why. */
const forbid = (message, ...groups) => ['error', { patterns: [{ group: groups, message }] }]

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'drizzle/', '.lab-cache/', 'bench/results/', '.fuzz-findings/', 'enclave-client/dist/', 'enclave-client/native/', 'enclave-client/ebpf/', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx', '**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', fetch: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', structuredClone: 'readonly', queueMicrotask: 'readonly', crypto: 'readonly', Response: 'readonly', Request: 'readonly', Headers: 'readonly', setImmediate: 'readonly', performance: 'readonly', URLSearchParams: 'readonly' } },
    rules: {
      'no-undef': 'off', // TypeScript checks names
      // Today's idioms: \`return out(x), 0\` and \`if (c) (a(), b())\`; \`catch {}\` where absence is fine.
      '@typescript-eslint/no-unused-expressions': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  // Boundaries (docs/architecture.md §Import rules). Later blocks replace this first one's rule in their folders.
  {
    // Nothing below the HTTP layer knows HTTP: hono lives in app.ts, http/ and routes/ (and server.ts serves it).
    files: ['src/**/*.ts'],
    ignores: ['src/broker/app.ts', 'src/broker/server.ts', 'src/broker/http/**', 'src/broker/routes/**'],
    rules: { 'no-restricted-imports': forbid('HTTP (hono) belongs to src/broker/app.ts, http/ and routes/; flows take plain values', 'hono', 'hono/*', '@hono/*') },
  },
  {
    files: ['enclave-client/**/*.ts'],
    rules: { 'no-restricted-imports': forbid('enclave-client shares only src/protocol and src/util with the broker', '**/src/*', '!**/src/protocol', '!**/src/util', '**/src/*/**', '!**/src/protocol/**', '!**/src/util/**') },
  },
  {
    files: ['src/verifiers/**/*.ts'],
    rules: { 'no-restricted-imports': forbid('verifiers are pure: nothing from broker, policy or store', '**/broker/**', '**/policy/**', '**/store/**') },
  },
  {
    files: ['src/policy/**/*.ts'],
    rules: { 'no-restricted-imports': forbid('policy sees claims (src/protocol), never verifiers or evidence', '**/verifiers/**') },
  },
  {
    files: ['src/protocol/**/*.ts'],
    rules: { 'no-restricted-imports': forbid('src/protocol imports only src/util', '../*', '!../util', '../*/**', '!../util/**') },
  },
  {
    // Node 20 can deadlock exporting a key that generateKeyPairSync made (src/broker/jwe.ts says how):
    // the shipped code makes ephemeral EC keys with createECDH, and long-lived ones with WebCrypto.
    files: ['src/**/*.ts', 'enclave-client/src/**/*.ts'],
    rules: { 'no-restricted-syntax': ['error', { selector: "ImportSpecifier[imported.name='generateKeyPairSync'], MemberExpression[property.name='generateKeyPairSync']", message: 'generateKeyPairSync keys can deadlock Node 20 on export; use createECDH (ephemeral) or WebCrypto (see src/broker/jwe.ts)' }] },
  },
  // Tests, benches and scripts: the rules of the code, minus the ones that only make sense for it.
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', __dirname: 'readonly', process: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
)
