// Re-exports for the swtpm tests (one import line instead of three).
export { akName, parseTpmPublic, parseAkPublic } from '../../../src/verifiers/tpm/index.js'
export { verifyTpmCommand } from '../../../src/cli/verify-tpm.js'
