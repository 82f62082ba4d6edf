// Entry of the lab's keyward-client bundle (scripts/lab/build.sh): a CommonJS script, so the
// guest's loader (load.cjs) can run it with a V8 code cache made on the host.
import { main } from '../../../enclave-client/src/cli/main.js'

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
