// `npm run demo`: the broker on the embedded default (SQLite in .data/demo) on this host, and the
// demo's workloads (scripts/lib/demo-flow.ts) against it.
import { spawn } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, runBin, runDemoFlow, show, step, type DemoBroker } from './lib/demo-flow.js'

const DATA = join(ROOT, '.data/demo')

async function startLocalBroker(ekCaPem: string): Promise<DemoBroker> {
  step('Start the broker on the embedded default (SQLite in .data/demo)')
  const ca = join(DATA, 'tpm-ek-ca.pem')
  writeFileSync(ca, ekCaPem)
  const config = join(DATA, 'keyward.yaml')
  writeFileSync(config, `host: 127.0.0.1\nport: 0\ndataDir: ${DATA}\nlogLevel: warn\ntpm:\n  ekCaFiles: [${ca}]\n`)
  const broker = spawn(process.execPath, [join(ROOT, 'bin/keyward.js'), 'serve', '--config', config], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const port = await new Promise<number>((res, rej) => {
    const t = setTimeout(() => rej(new Error('broker did not start in 60 s')), 60_000)
    broker.on('message', (m: { keyward?: string; port?: number }) => {
      if (m.keyward === 'listening' && m.port) (clearTimeout(t), res(m.port))
    })
    broker.once('exit', (code) => rej(new Error(`broker exited with ${code}`)))
  })
  const url = `http://127.0.0.1:${port}`
  show(`keyward serve listening on ${url}`)
  return {
    url,
    admin: async (args) => (await runBin('keyward', [...args, '--data-dir', DATA])).stdout,
    stop: async () => {
      if (broker.exitCode !== null) return
      const exited = new Promise((r) => broker.once('exit', r))
      broker.kill('SIGTERM')
      await exited
    },
  }
}

async function main(): Promise<void> {
  rmSync(DATA, { recursive: true, force: true })
  mkdirSync(DATA, { recursive: true, mode: 0o700 })
  await runDemoFlow(DATA, startLocalBroker)
  console.log(`\nDemo complete. The broker's data is in ${DATA}.`)
}

main().catch((e: unknown) => {
  console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`)
  process.exit(1)
})
