// npm links the bins of dependencies, not a package's own: put keyward and keyward-client in
// node_modules/.bin so `npx keyward` and ../shared/tools/conformance.sh find them in a checkout.
import { mkdirSync, symlinkSync, rmSync, existsSync } from 'node:fs'
import { resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const binDir = resolve(root, 'node_modules/.bin')
if (existsSync(resolve(root, 'node_modules'))) {
  mkdirSync(binDir, { recursive: true })
  for (const name of ['keyward', 'keyward-client']) {
    const target = resolve(binDir, name)
    rmSync(target, { force: true })
    symlinkSync(`../../bin/${name}.js`, target)
  }
}
