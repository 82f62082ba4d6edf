// Graceful shutdown (RunningServer.close, what SIGTERM runs): a request in flight when the close
// begins is answered; new connections are refused at once; a request still running after the
// drain period is cut, so a stuck client cannot hold a shutdown forever.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { startHarness, type Harness } from './harness.js'
import { startServer } from '../../src/broker/server.js'
import type { BrokerDeps } from '../../src/broker/deps.js'

let h: Harness
beforeAll(async () => {
  h = await startHarness('sqlite')
})
afterAll(async () => {
  await h?.stop()
})

/** The harness's deps with a JWKS answer that waits for `release()`; `entered` resolves when a request reaches it. */
function gatedDeps() {
  let release!: () => void
  let entered!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const reached = new Promise<void>((r) => (entered = r))
  const tokens = { ...h.deps.tokens, jwks: async () => (entered(), await gate, h.deps.tokens.jwks()) }
  const deps: BrokerDeps = { ...h.deps, tokens }
  return { deps, release, reached }
}

describe('graceful shutdown', () => {
  it('answers the request in flight, refuses new connections, then closes', async () => {
    const g = gatedDeps()
    const server = await startServer(g.deps)
    const url = `http://127.0.0.1:${server.port}/.well-known/jwks.json`
    const inFlight = fetch(url)
    await g.reached
    const closed = server.close()
    await expect(fetch(url)).rejects.toThrow()
    g.release()
    const r = await inFlight
    expect(r.status).toBe(200)
    expect(((await r.json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0)
    await closed
  })

  it('cuts a request still running when the drain period ends', async () => {
    const g = gatedDeps()
    const server = await startServer(g.deps)
    const inFlight = fetch(`http://127.0.0.1:${server.port}/.well-known/jwks.json`)
    await g.reached
    await server.close({ drainMs: 50 })
    await expect(inFlight).rejects.toThrow()
    g.release()
  })
})
