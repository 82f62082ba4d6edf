// `keyward policy test POLICY.yaml CLAIMS_OR_EVIDENCE.json [--refs refs.json] [--at TIME]
//  [--allowlist runtime-state.json [--allowlist-pcr HEX | --allowlist-pcr-index N]] [--json]`
// Offline evaluation for policy authors and CI. The input is either claims as
// `keyward verify --json` prints them, or {"tee", "evidence", "at"?} which is verified here with
// the TEE's verifier (pinned roots; TPM AK trust is not checked offline). Exit: 0 allow, 3 deny,
// 2 invalid input (policy, claims, evidence or flags).
import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { KeywardError, isKeywardError } from '../errors.js'
import type { Verifier } from '../verifiers/types.js'
import type { JsonObject, VerifiedClaims } from '../protocol/claims.js'
import { TEES, type Tee } from '../protocol/tee.js'
import { compilePolicy, evaluatePolicy, toPolicyClaims, type Decision, type PolicyClaims, type PolicyInput } from '../policy/engine.js'
import { activeRefs } from '../policy/reference-values.js'
import { judgeAllowlistState } from '../policy/allowlist-state.js'
import { DEFAULT_ALLOWLIST_PCR, decodeStatement } from '../protocol/allowlist-state.js'
import { fromHex } from '../util/bytes.js'
import type { AllowlistFacts } from '../policy/cel.js'
import type { ReferenceValueRow } from '../store/types.js'
import { positionals, str, type Command } from './args.js'

const ClaimsJson = z.object({
  tee: z.enum(TEES),
  measurement: z.string(),
  debug: z.boolean(),
  issuedAt: z.string().nullable(),
  details: z.record(z.string(), z.json()),
})
const EvidenceJson = z.strictObject({ tee: z.enum(TEES), evidence: z.unknown(), at: z.string().optional() })
const RefsMap = z.record(z.string(), z.array(z.string()))
const RefRows = z.array(
  z.object({
    id: z.string(),
    set: z.string(),
    tee: z.string().default(''),
    value: z.string(),
    source: z.string().default(''),
    createdBy: z.string().default(''),
    createdAt: z.number().default(0),
    expiresAt: z.number().nullable().default(null),
    revokedAt: z.number().nullable().default(null),
    revokedBy: z.string().nullable().default(null),
    note: z.string().nullable().default(null),
  }),
)

function bad(message: string): KeywardError {
  return new KeywardError('ERR_BAD_REQUEST', message)
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (e) {
    throw bad(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`)
  }
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readText(path))
  } catch (e) {
    throw isKeywardError(e) ? e : bad(`${path}: not JSON`)
  }
}

function parseTime(s: string, what: string): Date {
  const d = new Date(s)
  if (Number.isNaN(d.getTime())) throw bad(`${what}: not an ISO 8601 time`)
  return d
}

async function loadVerifier(tee: Tee): Promise<Verifier> {
  // Verifier modules are loaded only when evidence needs them; literal specifiers so bundlers and vitest resolve them.
  switch (tee) {
    case 'tpm':
      return (await import('../verifiers/tpm/index.js')).createTpmVerifier()
    case 'nitro':
      return (await import('../verifiers/nitro/index.js')).createNitroVerifier()
    case 'sev-snp':
      return (await import('../verifiers/sev-snp/index.js')).createSevSnpVerifier()
  }
}

async function readClaims(path: string, atFlag: Date | undefined): Promise<{ claims: PolicyClaims; at: Date | undefined }> {
  const raw = readJson(path)
  if (raw && typeof raw === 'object' && 'evidence' in raw) {
    const e = EvidenceJson.safeParse(raw)
    if (!e.success) throw bad(`${path}: expected {"tee", "evidence", "at"?}`)
    const at = atFlag ?? (e.data.at ? parseTime(e.data.at, `${path} at`) : new Date())
    const verifier = await loadVerifier(e.data.tee)
    const vc: VerifiedClaims = await verifier.verify(verifier.decode(e.data.evidence), { now: at })
    return { claims: toPolicyClaims(vc), at }
  }
  const c = ClaimsJson.safeParse(raw)
  if (!c.success) throw bad(`${path}: expected claims {tee, measurement, debug, issuedAt, details} or evidence {tee, evidence}`)
  return { claims: { ...c.data, details: c.data.details as JsonObject }, at: atFlag }
}

function readRefs(path: string | undefined, now: Date, tee: string): Pick<PolicyInput, 'refs' | 'refIds'> {
  if (!path) return { refs: {} }
  const raw = readJson(path)
  const rows = RefRows.safeParse(raw)
  if (rows.success) {
    const a = activeRefs(rows.data as ReferenceValueRow[], now, tee)
    return { refs: a.refs, refIds: a.byValue }
  }
  const map = RefsMap.safeParse(raw)
  if (map.success) return { refs: map.data }
  throw bad(`${path}: expected {"set": ["value", ...]} or an array of reference value rows`)
}

interface AllowlistOptions {
  log: string | undefined
  pcrHex: string | undefined
  idx: string | undefined
}

const AllowlistStateJson = z.strictObject({
  allowlist: z.strictObject({ records: z.array(z.string()).max(64), statement: z.string() }),
})

/**
 * The runtime state as the client sends it ({"allowlist": {"records", "statement"}}), judged as the
 * broker does; offline, the statement's own nonce and key stand in for the challenge (not checked,
 * like AK trust).
 */
function readAllowlist({ log, pcrHex, idx }: AllowlistOptions, claims: PolicyClaims): AllowlistFacts | undefined {
  if (!log) {
    if (pcrHex || idx) throw bad('--allowlist-pcr needs --allowlist')
    return undefined
  }
  let parsed: z.infer<typeof AllowlistStateJson>
  try {
    parsed = AllowlistStateJson.parse(JSON.parse(readText(log)))
  } catch {
    throw bad(`${log}: expected {"allowlist": {"records": [hex, ...], "statement": hex}}`)
  }
  const hex = (h: string, what: string): Uint8Array => {
    const b = fromHex(h)
    if (!b) throw bad(`${log}: ${what} is not hex`)
    return b
  }
  const ev = { records: parsed.allowlist.records.map((r) => hex(r, 'a record')), statement: hex(parsed.allowlist.statement, 'the statement') }
  let quoted = pcrHex
  if (!quoted) {
    if (claims.tee !== 'tpm') throw new KeywardError('ERR_ALLOWLIST_UNATTESTED', `exec-allowlist state cannot be attested on ${claims.tee}`)
    const index = idx === undefined ? DEFAULT_ALLOWLIST_PCR : Number(idx)
    if (!Number.isInteger(index) || index < 0 || index > 23) throw bad('--allowlist-pcr-index must be 0-23')
    const pcrs = claims.details['pcrs'] as { sha256?: Record<string, unknown> } | undefined
    const v = pcrs?.sha256?.[String(index)]
    if (typeof v !== 'string') throw bad(`the TPM claims carry no quoted sha256 PCR ${index}`)
    quoted = v
  }
  const { body } = decodeStatement(ev.statement)
  // Not hex, or not 32 bytes: the judge refuses it (ERR_EVIDENCE_MALFORMED).
  return judgeAllowlistState(ev, fromHex(quoted) ?? new Uint8Array(0), { nonce: body.nonce, jkt: body.jkt })
}

function formatDecision(d: Decision, claims: PolicyClaims): string {
  let s = `${d.allow ? 'ALLOW' : 'DENY'} policy ${d.policy} for ${claims.tee} ${claims.measurement}\n`
  for (const f of d.failures) s += `  FAIL ${f.condition}: ${f.message}\n`
  if (d.allow) {
    if (d.grants.secrets.length) s += `  secrets: ${d.grants.secrets.join(', ')}\n`
    for (const v of d.grants.vault) s += `  vault: role ${v.role} policies [${v.policies.join(', ')}] ttl ${v.ttlSeconds}s\n`
    for (const t of d.grants.tools) s += t.kind === 'jwt' ? `  tool: ${t.name} ${t.audience} [${t.scopes.join(' ')}] ttl ${t.ttlSeconds}s\n` : `  tool: ${t.name} API key from secret ${t.apiKeySecret}\n`
    for (const g of d.grants.spiffe) s += `  spiffe: ${g.id} audiences [${g.audiences.join(' ')}] x509 ttl ${g.x509TtlSeconds}s jwt ttl ${g.jwtTtlSeconds}s\n`
    if (d.referenceIds.length) s += `  reference values: ${d.referenceIds.join(', ')}\n`
  }
  return s
}

const USAGE = 'usage: keyward policy test POLICY.yaml CLAIMS_OR_EVIDENCE.json [--refs refs.json] [--at TIME] [--allowlist STATE.json [--allowlist-pcr HEX | --allowlist-pcr-index N]] [--json]'

export const policyTest: Command = {
  usage: USAGE,
  options: { refs: { type: 'string' }, at: { type: 'string' }, allowlist: { type: 'string' }, 'allowlist-pcr': { type: 'string' }, 'allowlist-pcr-index': { type: 'string' }, json: { type: 'boolean' } },
  async run(args) {
    const [policyPath, inputPath] = positionals(args, ['POLICY', 'CLAIMS_OR_EVIDENCE'], USAGE)
    const { values } = args
    const json = values.json === true
    try {
      const atText = str(values.at)
      const atFlag = atText ? parseTime(atText, '--at') : undefined
      const allowlistOpts: AllowlistOptions = { log: str(values.allowlist), pcrHex: str(values['allowlist-pcr']), idx: str(values['allowlist-pcr-index']) }
      const policy = compilePolicy(readText(policyPath!), { file: policyPath! })
      const { claims, at } = await readClaims(inputPath!, atFlag)
      const now = at ?? new Date()
      const allowlist = readAllowlist(allowlistOpts, claims)
      const input: PolicyInput = { claims, ...readRefs(str(values.refs), now, claims.tee), now, ...(allowlist ? { allowlist } : {}) }
      const d = evaluatePolicy(policy, input)
      process.stdout.write(json ? JSON.stringify({ ...d, tee: claims.tee, measurement: claims.measurement, at: now.toISOString() }, null, 2) + '\n' : formatDecision(d, claims))
      return d.allow ? 0 : 3
    } catch (e) {
      const err = isKeywardError(e) ? e : new KeywardError('ERR_INTERNAL', e instanceof Error ? e.message : String(e))
      if (json) process.stdout.write(JSON.stringify({ allow: false, error: err.toJSON() }) + '\n')
      process.stderr.write(`${err.code}: ${err.message}\n`)
      return 2
    }
  },
}
