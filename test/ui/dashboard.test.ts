// The drift dashboard (/ui) in a real headless browser: Debian's chromium driven by playwright-core
// against a real broker (HTTP on 127.0.0.1, SQLite) with real swtpm TPM attestations: two enrolled
// workloads are allowed and release secrets, one then drifts (PCR 16 extended after boot) and is
// denied, a release of an ungranted secret is denied, a third TPM AK waits for approval. A person
// logs in through the form and reads each page; the screenshots go to docs/screenshots (README).
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { startHarness, type Harness } from '../broker/harness.js'
import { startSwtpm, tpmTool, type Swtpm } from '../enclave-client/helpers/swtpm.js'
import { createClient, type KeywardClient } from '../../enclave-client/src/client.js'
import { createTpmCollector } from '../../enclave-client/src/collectors/tpm.js'
import { issueEnrolmentToken } from '../../src/broker/enrolment.js'
import { createApp } from '../../src/broker/app.js'
import * as A from '../../src/broker/admin-services.js'
import { UI_SESSION_TTL_MS } from '../../src/broker/ui-sessions.js'
import { REPO_ROOT } from '../helpers/vectors.js'
import { hashCredential } from '../../src/sealing/credentials.js'

const PCR = 16
const XSS = '<script>alert(1)</script>'
const GOLDEN = createHash('sha256').update('keyward ui: approved boot').digest()
const DRIFT = createHash('sha256').update('keyward ui: unexpected module').digest()
const GOLDEN_PCR = createHash('sha256').update(Buffer.alloc(32)).update(GOLDEN).digest('hex')
const DRIFTED_PCR = createHash('sha256').update(Buffer.from(GOLDEN_PCR, 'hex')).update(DRIFT).digest('hex')
// The README's screenshots are this test's: KEYWARD_UPDATE_SCREENSHOTS=1 writes them to docs/screenshots;
// otherwise they go to a temporary folder, so a test run leaves the checkout as it was.
const SHOTS = process.env.KEYWARD_UPDATE_SCREENSHOTS === '1' ? join(REPO_ROOT, 'docs/screenshots') : mkdtempSync(join(tmpdir(), 'keyward-ui-shots-'))

const POLICY_WEB = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: ui-web
spec:
  tees: [tpm]
  conditions:
    - name: enrolled-as-web
      expr: claims.details.akTrust.workload == "svc-web"
    - name: pcr16-golden
      expr: claims.details.pcrs.sha256["16"] in refs["ui-pcr16"]
  grants:
    secrets: [db-password]
`
// The second policy names a string a browser would run, were it not escaped: it shows among the
// failing conditions of every denial of svc-web.
const POLICY_BATCH = `apiVersion: keyward.dev/v1
kind: ReleasePolicy
metadata:
  name: ui-batch
spec:
  tees: [tpm]
  conditions:
    - name: enrolled-as-batch
      expr: claims.details.akTrust.workload in ["svc-batch", "${XSS}"]
  grants:
    secrets: [api-key]
`

let tpm: Swtpm
let dir: string
let h: Harness
let browser: Browser
let context: BrowserContext
let page: Page
const clients: KeywardClient[] = []
let pendingAk: string
const dialogs: string[] = []

const clientFor = (name: string): KeywardClient => {
  const c = createClient({ broker: h.url, collector: createTpmCollector({ tcti: tpm.tcti, stateDir: join(dir, name), pcrs: `sha256:7,${PCR}` }), retries: 0 })
  clients.push(c)
  return c
}
const enrolled = async (name: string): Promise<KeywardClient> => {
  const c = clientFor(name)
  const { token } = await issueEnrolmentToken(h.deps, name, 600, 'test')
  expect(await c.register(name, { enrolToken: token })).toMatchObject({ status: 'enrolled' })
  return c
}
const text = async (): Promise<string> => (await page.locator('main').innerText()).replace(/\s+/g, ' ')
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })

async function logIn(credential: string): Promise<number> {
  await page.goto(`${h.url}/ui/login`)
  await page.fill('#credential', credential)
  const [res] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/ui/login') && r.request().method() === 'POST'), page.click('button[type=submit]')])
  await page.waitForLoadState()
  return res.status()
}

beforeAll(async () => {
  tpm = await startSwtpm({ ekCert: true })
  dir = await mkdtemp(join(tmpdir(), 'kw-ui-'))
  const ca = join(dir, 'ek-ca.pem')
  await writeFile(ca, `${tpm.caIntermediate}\n${tpm.caRoot}`)
  h = await startHarness('sqlite', { tpm: { ekCaFiles: [ca] } })
  await A.applyPolicy(h.deps, POLICY_WEB, 'test')
  await A.applyPolicy(h.deps, POLICY_BATCH, 'test')
  await A.addReferenceValue(h.deps, { set: 'ui-pcr16', tee: 'tpm', value: GOLDEN_PCR, source: 'test: approved boot' }, 'test')

  await tpmTool(tpm.tcti, 'tpm2_pcrreset', [String(PCR)])
  await tpmTool(tpm.tcti, 'tpm2_pcrextend', [`${PCR}:sha256=${GOLDEN.toString('hex')}`])
  const [web, batch] = [await enrolled('svc-web'), await enrolled('svc-batch')]
  for (let i = 0; i < 3; i++) expect(new TextDecoder().decode(await web.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
  await batch.getSecret('api-key')
  await expect(web.getSecret('not-granted')).rejects.toMatchObject({ code: 'ERR_NOT_GRANTED' })
  // The host of svc-web drifts: something is measured into PCR 16 after the approved boot.
  await tpmTool(tpm.tcti, 'tpm2_pcrextend', [`${PCR}:sha256=${DRIFT.toString('hex')}`])
  await expect(web.attest()).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' })
  await batch.attest()
  pendingAk = (await clientFor('svc-new').register('svc-new')).akName
  expect((await fetch(`${h.url}/v1/challenge`, { method: 'POST' })).status).toBe(200)

  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  page = await context.newPage()
  page.on('dialog', (d) => void (dialogs.push(d.message()), d.dismiss()))
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await Promise.all(clients.map((c) => c.close()))
  await h?.stop()
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('drift dashboard in chromium', () => {
  it('shows nothing without a login, and refuses a wrong credential', async () => {
    const res = await page.goto(`${h.url}/ui/workloads`)
    expect(new URL(page.url()).pathname).toBe('/ui/login')
    expect(res!.headers()['content-security-policy']).toBe("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    await shot('login')
    const forged = h.adminToken.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))
    expect(await logIn(forged)).toBe(401)
    expect(await text()).toContain('That is not a live admin credential.')
    expect(await context.cookies()).toEqual([])
    expect((await fetch(`${h.url}/ui/denials`, { redirect: 'manual' })).status).toBe(303)
  })

  it('logs in through the form with an HttpOnly, SameSite=Strict session cookie', async () => {
    expect(await logIn(h.adminToken)).toBe(303)
    expect(new URL(page.url()).pathname).toBe('/ui')
    const [cookie, ...more] = await context.cookies()
    expect(more).toEqual([])
    expect(cookie).toMatchObject({ name: 'keyward_ui', httpOnly: true, sameSite: 'Strict', secure: false, path: '/ui' })
    expect(cookie!.value).not.toContain(h.adminToken.split('.').at(-1)!)
  })

  it('overview: counts, drifted workloads first', async () => {
    await page.goto(`${h.url}/ui`)
    const t = await text()
    expect(t).toMatch(/Workloads 2 Drifted 1 In line 1 Enrolments awaiting approval 1 Stored challenges \d+/)
    const rows = page.locator('main table tbody tr')
    expect(await rows.nth(0).innerText()).toMatch(/tpm:svc-web\s+tpm\s+ui-batch,ui-web\s+.*deny\s+drifted since/)
    expect(await rows.nth(1).innerText()).toMatch(/tpm:svc-batch\s+tpm\s+ui-batch\s+.*allow\s+in line/)
    await shot('overview')
  })

  it('workloads: declared versus actual per measured item, the drift mark and the failing conditions', async () => {
    await page.goto(`${h.url}/ui/workloads`)
    const web = page.locator('article', { hasText: 'tpm:svc-web' })
    expect(await web.locator('h2').first().innerText()).toMatch(/drifted since \d{4}-\d\d-\d\d/)
    const pcrRow = (await web.locator('tr', { hasText: `pcr sha256:${PCR}` }).innerText()).replace(/\s+/g, ' ')
    expect(pcrRow).toBe(`pcr sha256:${PCR} ${DRIFTED_PCR} ${GOLDEN_PCR} none changed`)
    expect((await web.locator('tr', { hasText: 'pcr sha256:7' }).innerText()).replace(/\s+/g, ' ')).toMatch(/ same$/)
    const failures = await web.locator('ul.failures').innerText()
    expect(failures).toContain('pcr16-golden (ui-web)')
    expect(failures).toContain(`actual ${DRIFTED_PCR}`)
    expect(failures).toContain(`enrolled-as-batch (ui-batch)`)
    const batch = page.locator('article', { hasText: 'tpm:svc-batch' })
    expect(await batch.locator('h2').innerText()).toContain('in line')
    // The batch host is the same TPM: its PCR 16 is no longer the declared value either, but its policy does not ask.
    expect((await batch.locator('tr', { hasText: `pcr sha256:${PCR}` }).innerText()).replace(/\s+/g, ' ')).toBe(`pcr sha256:${PCR} ${DRIFTED_PCR} ${DRIFTED_PCR} none same`)
    await shot('workloads')
  })

  it('denials: every failing condition, escaped; releases over time as SVG; baselines', async () => {
    await page.goto(`${h.url}/ui/denials`)
    const t = await text()
    expect(t).toContain('ERR_POLICY_DENIED')
    expect(t).toContain('pcr16-golden')
    expect(t).toContain(`expected ["svc-batch","${XSS}"], actual svc-web`)
    expect(t).toMatch(/release:secret tpm:svc-web ERR_NOT_GRANTED/)
    expect(await page.locator('script').count()).toBe(0)
    await shot('denials')

    await page.goto(`${h.url}/ui/releases?window=1h`)
    const charts = page.locator('figure')
    expect(await charts.count()).toBe(2)
    expect((await charts.nth(0).locator('svg').innerHTML()).includes('db-password')).toBe(true)
    expect(await charts.nth(0).locator('g', { hasText: 'db-password' }).locator('text').last().textContent()).toBe('3')
    expect(await charts.nth(0).locator('g', { hasText: 'api-key' }).locator('text').last().textContent()).toBe('1')
    expect(await charts.nth(1).locator('g', { hasText: 'tpm:svc-web' }).locator('text').last().textContent()).toBe('3')
    expect(await charts.nth(1).locator('rect.bar').count()).toBeGreaterThanOrEqual(2)
    await shot('releases')

    await page.goto(`${h.url}/ui/baselines`)
    const web = page.locator('article', { hasText: 'tpm:svc-web' })
    expect((await web.locator('tr', { hasText: `pcr sha256:${PCR}` }).innerText()).replace(/\s+/g, ' ')).toBe(`pcr sha256:${PCR} ${GOLDEN_PCR} ${DRIFTED_PCR} changed`)
    expect(await web.locator('dl').innerText()).toMatch(/Under policy\s+ui-web/)
    await shot('baselines')
    expect(dialogs).toEqual([])
  })

  it('pending: an enrolment awaiting approval is approved with its button, audited as this admin', async () => {
    await page.goto(`${h.url}/ui/pending`)
    expect(await text()).toMatch(/Stored challenges \(nonces issued, not yet pruned\) [1-9]/)
    const row = page.locator('tr', { hasText: pendingAk })
    expect(await row.innerText()).toContain('svc-new')
    await shot('pending')
    await Promise.all([page.waitForURL(/\/ui\/pending$/), row.locator('button.approve').click()])
    expect(await text()).toContain('Enrolments awaiting approval None.')
    expect(await h.deps.store.getAk(pendingAk)).toMatchObject({ status: 'enrolled', enrolledBy: 'admin:tester' })
    expect((await A.allAuditRows(h.deps)).at(-1)).toMatchObject({ type: 'enrolment.approve', subject: pendingAk, detail: { by: 'admin:tester' } })
  })

  it('refuses a POST without the CSRF token, with a wrong one, or from another origin', async () => {
    const cookie = (await context.cookies())[0]!
    const csrf = await page.locator('form.logout input[name=csrf]').inputValue()
    const post = (body: string, origin = h.url) =>
      fetch(`${h.url}/ui/logout`, { method: 'POST', redirect: 'manual', headers: { cookie: `${cookie.name}=${cookie.value}`, origin, 'content-type': 'application/x-www-form-urlencoded' }, body })
    expect((await post('')).status).toBe(403)
    expect((await post(`csrf=${csrf.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))}`)).status).toBe(403)
    expect((await post(`csrf=${encodeURIComponent(csrf)}`, 'http://evil.example')).status).toBe(403)
    expect((await post(`csrf=${encodeURIComponent(csrf)}`, 'null')).status).toBe(403)
    // None of those logged the session out.
    expect((await page.goto(`${h.url}/ui/pending`))!.status()).toBe(200)
    expect(new URL(page.url()).pathname).toBe('/ui/pending')
  })

  it('logout ends the session on the server; a session expires by the broker clock', async () => {
    const old = (await context.cookies())[0]!
    await Promise.all([page.waitForURL(/\/ui\/login$/), page.click('form.logout button')])
    const replay = await fetch(`${h.url}/ui/workloads`, { redirect: 'manual', headers: { cookie: `${old.name}=${old.value}` } })
    expect(replay.status).toBe(303)
    expect(replay.headers.get('location')).toBe('/ui/login')

    expect(await logIn(h.adminToken)).toBe(303)
    h.advance(UI_SESSION_TTL_MS - 60_000)
    await page.goto(`${h.url}/ui/workloads`)
    expect(new URL(page.url()).pathname).toBe('/ui/workloads')
    h.advance(61_000)
    await page.goto(`${h.url}/ui/workloads`)
    expect(new URL(page.url()).pathname).toBe('/ui/login')
  })

  it('sets Secure with the __Secure- prefix when the broker is addressed over https', async () => {
    const app = createApp({ ...h.deps, config: { ...h.deps.config, publicUrl: 'https://keyward.example' } })
    const res = await app.request('http://127.0.0.1/ui/login', {
      method: 'POST',
      headers: { origin: 'https://keyward.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: `credential=${encodeURIComponent(h.adminToken)}`,
    })
    expect(res.status).toBe(303)
    expect(res.headers.get('set-cookie')).toMatch(/^__Secure-keyward_ui=[A-Za-z0-9_-]{43}; Max-Age=28800; Path=\/ui; HttpOnly; Secure; SameSite=Strict$/)
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect(res.headers.get('referrer-policy')).toBe('same-origin')
  })

  it('revoking the admin credential ends its sessions on the next request', async () => {
    const app = createApp(h.deps)
    const token = await A.createCredential(h.deps, 'admin', 'second', hashCredential)
    const login = await app.request('http://127.0.0.1/ui/login', {
      method: 'POST',
      headers: { origin: 'http://127.0.0.1', 'content-type': 'application/x-www-form-urlencoded' },
      body: `credential=${encodeURIComponent(token)}`,
    })
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!
    expect((await app.request('http://127.0.0.1/ui/pending', { headers: { cookie } })).status).toBe(200)
    await A.revokeCredential(h.deps, 'admin', 'second', 'test')
    const after = await app.request('http://127.0.0.1/ui/pending', { headers: { cookie } })
    expect(after.status).toBe(303)
    expect(after.headers.get('location')).toBe('/ui/login')
  })
})
