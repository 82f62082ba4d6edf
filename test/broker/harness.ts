// Starts a real broker (HTTP on 127.0.0.1, random port) over a real store for integration tests.
// Evidence comes from the Nitro verifier with a testOnly PKI passed as its trust root, so tests
// exercise the real verifier, policy engine, sealing and HTTP layers quickly; the TPM flow with a
// real swtpm is in test/e2e.
import { Writable } from 'node:stream'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encode } from 'cborg'
import { loadConfig, type BrokerConfig } from '../../src/broker/config.js'
import { buildDeps, startServer, type RunningServer } from '../../src/broker/server.js'
import { createLogger } from '../../src/broker/logger.js'
import type { BrokerDeps } from '../../src/broker/deps.js'
import * as A from '../../src/broker/admin-services.js'
import { hashCredential } from '../../src/sealing/credentials.js'
import { createLocation, type Backend, type TestLocation } from '../store/helpers.js'
import { testOnlyPki, testOnlyPayload, signCose, type TestOnlyPki } from '../verifiers/nitro/fixtures.js'
import type { Collector } from '../../enclave-client/src/collectors/types.js'
import { toHex } from '../../src/util/bytes.js'

export const TEST_POLICY = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: test-enclave
spec:
  tees: [nitro]
  allowDebug: false
  conditions:
    - name: pcr0-known
      expr: claims.details.pcrs["0"] in refs["nitro-pcr0"]
  grants:
    secrets: [db-password, api-key]
    tools: [{ name: github, audience: https://api.github.com, scopes: [repo:read], ttl: 10m }, { name: search-api, apiKeySecret: search-api-key }]
`

export interface Harness {
  backend: Backend
  location: TestLocation
  config: BrokerConfig
  deps: BrokerDeps
  server: RunningServer
  url: string
  pki: TestOnlyPki
  adminToken: string
  /** Everything the broker logged, for the no-secrets-in-logs test. */
  logs: string[]
  /** Moves the broker's clock. */
  advance(ms: number): void
  restart(): Promise<void>
  stop(): Promise<void>
}

/** The PCR0 the testOnly documents carry (fixtures fill PCR i with i+1). */
export const TEST_PCR0 = toHex(new Uint8Array(48).fill(1))

export async function startHarness(backend: Backend, over: Record<string, unknown> = {}): Promise<Harness> {
  const location = await createLocation(backend)
  const pki = await testOnlyPki(new Date())
  let offset = 0
  const clock = () => new Date(Date.now() + offset)
  const logs: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString())
      cb()
    },
  })
  const config = loadConfig({
    overrides: {
      port: 0,
      // SQLite keeps everything in its data dir; with PostgreSQL the dir holds only the keyring.
      dataDir: backend === 'sqlite' ? location.where : mkdtempSync(join(tmpdir(), 'keyward-pg-data-')),
      ...(backend === 'postgres' ? { databaseUrl: location.where } : {}),
      logLevel: 'debug',
      ...over,
    },
  })
  const build = async () => {
    const deps = await buildDeps(config, createLogger('debug', sink), { clock })
    deps.trust.nitroRoots = [pki.root.cert]
    return deps
  }
  let deps = await build()
  let server = await startServer(deps)
  const adminToken = await A.createCredential(deps, 'admin', 'tester', hashCredential)
  await A.applyPolicy(deps, TEST_POLICY, 'test')
  await A.addReferenceValue(deps, { set: 'nitro-pcr0', tee: 'nitro', value: TEST_PCR0, source: 'testOnly fixtures' }, 'test')
  await A.putSecret(deps, 'db-password', { text: 'testOnly-db-password-9f2c' }, 'test')
  await A.putSecret(deps, 'api-key', { text: 'testOnly-api-key-77aa' }, 'test')
  await A.putSecret(deps, 'not-granted', { text: 'testOnly-forbidden-value' }, 'test')
  await A.putSecret(deps, 'search-api-key', { text: 'testOnly-search-api-key-51d0' }, 'test')
  const h: Harness = {
    backend,
    location,
    config,
    get deps() {
      return deps
    },
    get server() {
      return server
    },
    get url() {
      return `http://127.0.0.1:${server.port}`
    },
    pki,
    adminToken,
    logs,
    advance(ms) {
      offset += ms
    },
    async restart() {
      await server.close()
      await deps.store.close()
      deps = await build()
      server = await startServer(deps)
    },
    async stop() {
      await server.close()
      await deps.store.close()
      await location.cleanup()
    },
  } as Harness
  return h
}

/** A collector that makes testOnly Nitro documents carrying the binding, as the NSM would. */
export function testOnlyNitroCollector(pki: TestOnlyPki, over: Record<string, unknown> = {}): Collector {
  return {
    tee: 'nitro',
    available: async () => true,
    async collect({ binding, nonce }) {
      const payload = testOnlyPayload(pki, { user_data: binding, nonce, timestamp: Date.now(), ...(over as Record<string, never>) })
      return { document: Buffer.from(signCose(encode(payload), pki.leaf.key)).toString('base64') }
    },
  }
}
