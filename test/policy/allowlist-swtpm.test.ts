// End to end on a software TPM: allowlist state digests extended into PCR 15 (the default) and
// quoted by a fresh swtpm (../shared/tools/tpm-quote.sh), the quote verified by the TPM verifier
// with the binding digest that carries the current state digest, the agent's log replayed
// against the quoted PCR, and the decision taken by a policy over the allowlist facts.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SHARED_TOOLS } from '../helpers/vectors.js'
import { KeywardError } from '../../src/errors.js'
import { bindingDigest } from '../../src/protocol/binding.js'
import { toHex } from '../../src/util/bytes.js'
import { tpmVerifier } from '../../src/verifiers/tpm/index.js'
import { compilePolicy, evaluatePolicy, toPolicyClaims, type Decision } from '../../src/policy/engine.js'
import { DEFAULT_ALLOWLIST_PCR, allowlistDigest, encodeAllowlistState, replayAllowlistLog, stateDigest, type AllowlistMode } from '../../src/policy/allowlist-state.js'
import { policySource } from './helpers.js'

const APPROVED = allowlistDigest([randomBytes(32), randomBytes(32)])
const CHANGED = allowlistDigest([randomBytes(32)])
const TAG = new Uint8Array(randomBytes(8))

function record(mode: AllowlistMode, digest: Uint8Array, denials: bigint): Uint8Array {
  return encodeAllowlistState({ allowlistDigest: digest, mode, progTag: TAG, denials, loadTime: 1_000_000n })
}

const policy = compilePolicy(
  policySource({
    tees: ['tpm'],
    conditions: [
      ['pcr7-golden', 'claims.details.pcrs.sha256["7"] in refs["tpm-sha256-pcr7"]'],
      ['allowlist-replayed', 'allowlist.present && allowlist.replayed'],
      ['allowlist-enforcing', 'allowlist.mode == "enforce"'],
      ['allowlist-approved', 'allowlist.allowlistDigest in refs["allowlist-digests"]'],
      ['allowlist-no-denials', 'allowlist.denials == 0'],
    ],
  }),
)
const refs = { 'tpm-sha256-pcr7': ['00'.repeat(32)], 'allowlist-digests': [toHex(APPROVED)] }

let tmp = ''
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'kw-allowlist-swtpm-'))
})
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

/** Extends each record's state digest into PCR 15, quotes PCR 7 and 15 with the binding as nonce. */
async function attest(name: string, extended: Uint8Array[], log: Uint8Array[] = extended): Promise<Decision> {
  const nonce = new Uint8Array(randomBytes(32))
  const jkt = new Uint8Array(randomBytes(32))
  const current = log[log.length - 1]!
  const binding = bindingDigest(nonce, jkt, stateDigest(current))
  const out = join(tmp, name)
  const extends_ = extended.flatMap((r) => ['-e', `${DEFAULT_ALLOWLIST_PCR}:sha256=${toHex(stateDigest(r))}`])
  execFileSync(join(SHARED_TOOLS, 'tpm-quote.sh'), ['-o', out, '-a', 'ecc', '-N', '1', '-l', `sha256:7,${DEFAULT_ALLOWLIST_PCR}`, '-n', toHex(binding), ...extends_], { stdio: 'pipe', timeout: 30_000 })
  const ev = JSON.parse(readFileSync(join(out, 'evidence.json'), 'utf8')) as { akPub: string; quote: string; signature: string; pcrsTpm2ToolsBin: string }
  const vc = await tpmVerifier.verify(tpmVerifier.decode({ ak: ev.akPub, quote: ev.quote, signature: ev.signature, pcrs: ev.pcrsTpm2ToolsBin }), { now: new Date(), expectedBinding: binding })
  const claims = toPolicyClaims(vc)
  const quoted = (claims.details['pcrs'] as { sha256: Record<string, string> }).sha256[String(DEFAULT_ALLOWLIST_PCR)]!
  const allowlist = replayAllowlistLog(log, quoted)
  return evaluatePolicy(policy, { claims, refs, allowlist, now: new Date() })
}

describe('exec-allowlist state measured into PCR 15 of a software TPM', () => {
  it('admits an approved, enforcing allowlist with no denials', async () => {
    const d = await attest('ok', [record('audit', APPROVED, 0n), record('enforce', APPROVED, 0n)])
    expect(d.failures).toEqual([])
    expect(d.allow).toBe(true)
  }, 30_000)

  it('denies audit mode, a changed allowlist and denials, naming each condition', async () => {
    const d1 = await attest('audit', [record('audit', APPROVED, 0n)])
    expect(d1.failures.map((f) => [f.condition, f.actual])).toEqual([['allowlist-enforcing', 'audit']])
    const d2 = await attest('changed', [record('enforce', APPROVED, 0n), record('enforce', CHANGED, 0n)])
    expect(d2.failures.map((f) => [f.condition, f.actual])).toEqual([['allowlist-approved', toHex(CHANGED)]])
    const d3 = await attest('denials', [record('enforce', APPROVED, 0n), record('enforce', APPROVED, 2n)])
    expect(d3.failures.map((f) => [f.condition, f.actual, f.expected])).toEqual([['allowlist-no-denials', 2, 0]])
  }, 60_000)

  it('a state that does not replay to the quoted PCR is ERR_ALLOWLIST_REPLAY', async () => {
    // The host extended an audit-mode record that its log leaves out.
    const hidden = record('audit', APPROVED, 5n)
    const shown = record('enforce', APPROVED, 0n)
    let err: unknown
    try {
      await attest('unlogged', [hidden, shown], [shown])
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(KeywardError)
    expect((err as KeywardError).code).toBe('ERR_ALLOWLIST_REPLAY')
  }, 30_000)
})
