// Moved to src/protocol/binding.ts. Kept only for test/lab/measured-boot.test.ts until the merge in
// flight on test/lab lands; delete it then (and import from src/protocol/binding.ts there).
export { bindingDigest, jwkThumbprint, thumbprintBytes } from '../protocol/binding.js'
