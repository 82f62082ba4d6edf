// The workload side (enclave-client): `keyward-client run --svid DIR` writes svid.pem, svid.key
// and bundle.pem for the child and renews them while it runs. Against a real broker (HTTP on
// loopback) with testOnly Nitro evidence; the renewal timer is injected and fired by the test.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { testOnlyNitroCollector, type Harness } from '../broker/harness.js'
import * as A from '../../src/broker/admin-services.js'
import { createClient, type KeywardClient } from '../../enclave-client/src/client.js'
import { startSvidFiles, renewDelay, SVID_FILES, type Schedule } from '../../enclave-client/src/cli/svid-files.js'
import { runCommand } from '../../enclave-client/src/cli/run.js'
import { parseCli } from '../../enclave-client/src/cli/args.js'
import { opensslVerify, pemBlocks, scratch, startSpiffeHarness, GRANTED_AUDIENCES, SPIFFE_ID, SPIFFE_POLICY, TRUST_DOMAIN } from './helpers.js'
import { goParseAndValidateJwtSvid, goParseBundle } from './go-spiffe-rules.js'

describe('keyward-client SVIDs', () => {
  let h: Harness
  let client: KeywardClient
  beforeAll(async () => {
    h = await startSpiffeHarness()
    client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), exportableKey: true, retries: 0 })
  })
  afterAll(async () => {
    await client?.close()
    await h?.stop()
  })

  /** A timer the test fires: records each requested delay. */
  function manualTimer() {
    const pending: Array<{ fn: () => Promise<void>; ms: number; cancelled: boolean }> = []
    const schedule: Schedule = (fn, ms) => {
      const t = { fn, ms, cancelled: false }
      pending.push(t)
      return () => (t.cancelled = true)
    }
    return { schedule, pending, fire: () => pending.at(-1)!.fn() }
  }

  it('writes svid.pem, svid.key (0600) and bundle.pem: the key is the attested key, the chain verifies with openssl; renews when its timer fires, and retries after a failure', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'kw-svid-')), 'svid')
    const timer = manualTimer()
    const renewed: string[] = []
    const errors: unknown[] = []
    const files = await startSvidFiles(client, dir, { schedule: timer.schedule, now: () => h.deps.clock().getTime(), onRenew: (s) => renewed.push(s.certificates), onError: (e) => errors.push(e) })
    const read = (f: string) => readFileSync(join(dir, f), 'utf8')
    const first = read(SVID_FILES.cert)
    expect(statSync(join(dir, SVID_FILES.key)).mode & 0o777).toBe(0o600)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    const leaf = new X509Certificate(pemBlocks(first)[0]!)
    expect(leaf.subjectAltName).toBe(`URI:${SPIFFE_ID}`)
    expect(leaf.checkPrivateKey(createPrivateKey(read(SVID_FILES.key)))).toBe(true)
    const v = await opensslVerify(scratch({ 'leaf.pem': pemBlocks(first)[0]!, 'chain.pem': pemBlocks(first)[1]!, 'bundle.pem': read(SVID_FILES.bundle) }), 'sslclient')
    expect(v.ok, v.out).toBe(true)
    // Renewal is planned at half the remaining lifetime (2 h grant: about an hour).
    expect(timer.pending).toHaveLength(1)
    expect(timer.pending[0]!.ms).toBeGreaterThan(3590_000)
    expect(timer.pending[0]!.ms).toBeLessThanOrEqual(3600_000)
    expect(renewDelay(files.current.expiresAt, files.current.expiresAt.getTime() - 1000_000, false)).toBe(500_000)

    // The policy stops granting SPIFFE identities: the renewal fails, is retried soon, the files stay.
    await A.applyPolicy(h.deps, SPIFFE_POLICY.replace(/ {4}spiffe: .*\n/, ''), 'test')
    await timer.fire()
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ code: 'ERR_NOT_GRANTED' })
    expect(timer.pending).toHaveLength(2)
    expect(timer.pending[1]!.ms).toBeLessThanOrEqual(30_000)
    expect(read(SVID_FILES.cert)).toBe(first)

    // Granted again: the next firing renews; the files hold a new certificate for the same key.
    await A.applyPolicy(h.deps, SPIFFE_POLICY, 'test')
    await timer.fire()
    expect(renewed).toHaveLength(1)
    const second = read(SVID_FILES.cert)
    expect(second).toBe(renewed[0])
    expect(new X509Certificate(pemBlocks(second)[0]!).serialNumber).not.toBe(leaf.serialNumber)
    expect(new X509Certificate(pemBlocks(second)[0]!).checkPrivateKey(createPrivateKey(read(SVID_FILES.key)))).toBe(true)
    expect(timer.pending).toHaveLength(3)

    await files.stop()
    for (const f of Object.values(SVID_FILES)) expect(existsSync(join(dir, f))).toBe(false)
  })

  it('a JWT-SVID through the client passes go-spiffe validation with the published bundle', async () => {
    const svid = await client.jwtSvid([GRANTED_AUDIENCES[0]!])
    expect(svid.spiffeId).toBe(SPIFFE_ID)
    const bundle = goParseBundle(await (await fetch(`${h.url}/v1/spiffe/bundle`)).text())
    await expect(goParseAndValidateJwtSvid(svid.token, new Map([[TRUST_DOMAIN, bundle]]), [GRANTED_AUDIENCES[0]!], h.deps.clock())).resolves.toMatchObject({ id: SPIFFE_ID })
  })

  it('run --svid DIR: the child finds its SVID in KEYWARD_SVID_DIR, and the files are gone once it exits', async () => {
    const base = mkdtempSync(join(tmpdir(), 'kw-svid-run-'))
    const dir = join(base, 'svid')
    const out = join(base, 'seen.json')
    const child = `const fs=require('fs');const d=process.env.KEYWARD_SVID_DIR;fs.writeFileSync(${JSON.stringify(out)},JSON.stringify({d,files:['svid.pem','svid.key','bundle.pem'].filter(f=>fs.existsSync(d+'/'+f))}))`
    const args = parseCli(['--broker', h.url, 'run', '--svid', dir, '--renew-interval', '0', '--', process.execPath, '-e', child])
    expect(args.svidDir).toBe(dir)
    const lines: string[] = []
    const code = await runCommand(client, args, { progress: (l) => lines.push(l), failure: (p, e) => lines.push(`${p}: ${String(e)}`) })
    expect(code, lines.join('\n')).toBe(0)
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual({ d: dir, files: ['svid.pem', 'svid.key', 'bundle.pem'] })
    expect(lines.join('\n')).toContain(`X509-SVID ${SPIFFE_ID}`)
    expect(existsSync(join(dir, 'svid.key'))).toBe(false)
    expect(() => parseCli(['--broker', h.url, 'run', '--svid', 'a/../b', '--', 'true'])).toThrow(/--svid/)
  })
})
