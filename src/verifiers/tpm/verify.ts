// Quote verification in go-tpm-tools order (server/verify.go): signature by the AK per scheme,
// AK object attributes, attest type (parse.ts), extraData against the expected value, then a
// constant-time compare of pcrDigest with the hash of the presented PCR values.
// verifyTpmEvidence, the verifier's whole check, then asks ctx.resolveAk whether the AK is trusted
// and replays the event log against the quoted PCRs (eventlog.ts). Not checked: the TPM clock
// (not wall time) and qualifiedSigner (needs the AK's parent).
import { constants, verify as cryptoVerify } from 'node:crypto'
import { KeywardError, SignatureInvalidError, type ErrorCode } from '../../errors.js'
import { concatBytes, constantTimeEqual, toHex, type HashName } from '../../util/bytes.js'
import type { AkTrustClaim, JsonObject, TpmClaims } from '../../protocol/claims.js'
import type { VerifyContext } from '../types.js'
import type { TpmEvidence } from './decode.js'
import { replayEventLog } from './eventlog.js'
import { extractFacts } from './eventlog-facts.js'
import { hashOf } from './hash.js'
import { AK_REQUIRED_ATTRIBUTES, TPMA_OBJECT, hashAlgId } from './layout.js'
import {
  attributeNames,
  leftPad,
  type AkPublic,
  type PcrSelection,
  type PcrValues,
  type TpmPublic,
  type TpmsAttest,
  type TpmtSignature,
} from './parse.js'

/** TPM name of an object: nameAlg (u16 BE) ‖ H_nameAlg(TPMT_PUBLIC) (Part 1 §16). */
export function akName(p: TpmPublic): Uint8Array {
  const id = hashAlgId(p.nameAlg)
  return concatBytes(new Uint8Array([id >> 8, id & 0xff]), hashOf(p.nameAlg, p.raw))
}

/**
 * Verifies a TPMT_SIGNATURE by `key` over `signed` (the TPMS_ATTEST bytes); the hash comes from
 * the signature. Any failure is ERR_SIGNATURE_INVALID with a fixed message.
 */
export function verifyQuoteSignature(ak: AkPublic, sig: TpmtSignature, signed: Uint8Array): void {
  let ok = false
  const kt = ak.key.asymmetricKeyType
  try {
    if ((sig.sigAlg === 'rsassa' || sig.sigAlg === 'rsapss') && kt === 'rsa') {
      ok = cryptoVerify(sig.hash, signed, {
        key: ak.key,
        padding: sig.sigAlg === 'rsassa' ? constants.RSA_PKCS1_PADDING : constants.RSA_PKCS1_PSS_PADDING,
        // Part 1 Annex B.7: the TPM uses the largest salt; AUTO accepts any valid salt length.
        saltLength: constants.RSA_PSS_SALTLEN_AUTO,
      }, sig.sig)
    } else if (sig.sigAlg === 'ecdsa' && kt === 'ec') {
      const crv = ak.key.asymmetricKeyDetails?.namedCurve
      const size = crv === 'prime256v1' ? 32 : crv === 'secp384r1' ? 48 : crv === 'secp521r1' ? 66 : 0
      if (size > 0 && sig.r.length <= size && sig.s.length <= size) {
        ok = cryptoVerify(sig.hash, signed, { key: ak.key, dsaEncoding: 'ieee-p1363' },
          Buffer.concat([leftPad(sig.r, size), leftPad(sig.s, size)]))
      }
    }
  } catch {
    ok = false
  }
  if (!ok) throw new SignatureInvalidError('quote signature verification failed', { detail: { sigAlg: sig.sigAlg, hash: sig.hash } })
}

/** Throws ERR_AK_ATTRIBUTES unless the key is a restricted signing key fixed to its TPM (TPMA_OBJECT). */
export function checkAkAttributes(p: TpmPublic): void {
  const missing = AK_REQUIRED_ATTRIBUTES.filter((a) => (p.attributes & TPMA_OBJECT[a]) === 0)
  const extra = (p.attributes & TPMA_OBJECT.decrypt) !== 0 ? ['decrypt'] : []
  if (missing.length > 0 || extra.length > 0) {
    throw new KeywardError('ERR_AK_ATTRIBUTES', `attestation key attributes: ${[...missing.map((m) => `missing ${m}`), ...extra.map((e) => `has ${e}`)].join(', ')}`, {
      detail: { missing, unexpected: extra, attributes: `0x${p.attributes.toString(16).padStart(8, '0')}` },
    })
  }
}

function sameSelection(a: PcrSelection[], b: PcrSelection[]): boolean {
  return a.length === b.length && a.every((s, i) => s.hash === b[i]!.hash && s.pcrs.join(',') === b[i]!.pcrs.join(','))
}

/** Hash (with `alg`) of the PCR values in selection order: the quote's pcrDigest (Part 3 §18.4). */
export function computePcrDigest(alg: HashName, selection: PcrSelection[], pcrs: PcrValues): Uint8Array {
  const parts: Uint8Array[] = []
  for (const s of selection) {
    const bank = pcrs.banks[s.hash]
    for (const i of s.pcrs) {
      const v = bank?.get(i)
      if (!v) throw new KeywardError('ERR_PCR_DIGEST_MISMATCH', `PCR ${s.hash}:${i} is quoted but not presented`)
      parts.push(v)
    }
  }
  return new Uint8Array(hashOf(alg, ...parts))
}

export interface ExpectedExtraData {
  value: Uint8Array
  /** ERR_BINDING_MISMATCH for the broker's binding digest, ERR_NONCE_MISMATCH for a raw nonce (CLI). */
  code: Extract<ErrorCode, 'ERR_BINDING_MISMATCH' | 'ERR_NONCE_MISMATCH'>
}

export interface QuoteInput {
  ak: AkPublic
  attest: TpmsAttest
  signature: TpmtSignature
  pcrs: PcrValues
}

export interface VerifiedQuote {
  /** TPM name (hex) when the AK came as a TPM public area, null for a bare SPKI. */
  akName: string | null
  /** True only when the AK was a TPM public area whose attributes were checked. */
  akAttributesVerified: boolean
  attest: TpmsAttest
  /** PCR values proven by the signed pcrDigest: bank → index → value. */
  pcrs: PcrValues['banks']
}

/**
 * Verifies a quote: signature, AK attributes (only provable when `ak.public` is present; a bare
 * SPKI yields akAttributesVerified=false), extraData (when `expected` is given), and that the
 * presented PCR selection equals the quoted one and hashes to pcrDigest.
 */
export function verifyQuote(q: QuoteInput, expected?: ExpectedExtraData): VerifiedQuote {
  verifyQuoteSignature(q.ak, q.signature, q.attest.raw)
  if (q.ak.public) checkAkAttributes(q.ak.public)
  if (expected && !constantTimeEqual(q.attest.extraData, expected.value)) {
    throw new KeywardError(expected.code, expected.code === 'ERR_NONCE_MISMATCH'
      ? 'quote qualifying data does not match the nonce'
      : 'quote qualifying data does not match the binding digest')
  }
  if (!sameSelection(q.attest.pcrSelection, q.pcrs.selection)) {
    throw new KeywardError('ERR_PCR_DIGEST_MISMATCH', 'presented PCR selection differs from the quoted selection', {
      detail: { quoted: selectionString(q.attest.pcrSelection), presented: selectionString(q.pcrs.selection) },
    })
  }
  const computed = computePcrDigest(q.signature.hash, q.attest.pcrSelection, q.pcrs)
  if (!constantTimeEqual(computed, q.attest.pcrDigest)) {
    throw new KeywardError('ERR_PCR_DIGEST_MISMATCH', 'presented PCR values do not match the quoted pcrDigest', {
      detail: { quoted: toHex(q.attest.pcrDigest), computed: toHex(computed) },
    })
  }
  return {
    akName: q.ak.public ? toHex(akName(q.ak.public)) : null,
    akAttributesVerified: q.ak.public !== undefined,
    attest: q.attest,
    pcrs: q.pcrs.banks,
  }
}

export function selectionString(sel: PcrSelection[]): string {
  return sel.map((s) => `${s.hash}:${s.pcrs.join(',')}`).join('+')
}

function pcrsJson(banks: PcrValues['banks']): JsonObject {
  const out: JsonObject = {}
  for (const [bank, m] of Object.entries(banks) as [HashName, Map<number, Uint8Array>][]) {
    out[bank] = Object.fromEntries([...m].map(([i, v]) => [String(i), toHex(v)]))
  }
  return out
}

/** What extraData must equal: the binding digest (broker), else a raw nonce (offline, tpm2_checkquote -q), else nothing. */
function expectedExtraData(ctx: VerifyContext): ExpectedExtraData | undefined {
  if (ctx.expectedBinding) return { value: ctx.expectedBinding, code: 'ERR_BINDING_MISMATCH' }
  if (ctx.expectedNonce) return { value: ctx.expectedNonce, code: 'ERR_NONCE_MISMATCH' }
  return undefined
}

/**
 * Verifies TPM evidence: the quote (verifyQuote, extraData as expectedExtraData says), then AK
 * trust through ctx.resolveAk when given (an AK given only as SPKI has no TPM name and cannot be
 * resolved: ERR_AK_UNTRUSTED), then the event log, when present, against the quoted PCRs.
 */
export async function verifyTpmEvidence(e: TpmEvidence, ctx: VerifyContext): Promise<TpmClaims> {
  const q = verifyQuote({ ak: e.ak, attest: e.attest, signature: e.signature, pcrs: e.pcrs }, expectedExtraData(ctx))
  let trust: AkTrustClaim | null = null
  if (ctx.resolveAk) {
    if (q.akName === null) throw new KeywardError('ERR_AK_UNTRUSTED', 'AK given without its TPM public area cannot be resolved')
    const t = await ctx.resolveAk(q.akName)
    if (!t || t.revoked) {
      throw new KeywardError('ERR_AK_UNTRUSTED', t ? 'attestation key is revoked' : 'attestation key is not registered', { detail: { akName: q.akName } })
    }
    trust = { via: t.via, workload: t.workload }
  }
  const a = q.attest
  const details: JsonObject = {
    akName: q.akName,
    akAttributesVerified: q.akAttributesVerified,
    akAttributes: e.ak.public ? attributeNames(e.ak.public.attributes) : null,
    akTrust: trust && { via: trust.via, workload: trust.workload },
    sigScheme: `${e.signature.sigAlg}-${e.signature.hash}`,
    pcrs: pcrsJson(q.pcrs),
    clock: a.clock.toString(),
    resetCount: a.resetCount,
    restartCount: a.restartCount,
    safe: a.safe,
    firmwareVersion: a.firmwareVersion.toString(16).padStart(16, '0'),
    qualifiedSigner: toHex(a.qualifiedSigner),
  }
  if (e.eventLog) details.eventLog = extractFacts(e.eventLog, replayEventLog(e.eventLog, q.pcrs))
  return {
    tee: 'tpm',
    measurement: toHex(a.pcrDigest),
    debug: false,
    issuedAt: null,
    bindingData: a.extraData,
    nonce: null,
    publicKey: null,
    ak: { name: q.akName, trust },
    pcrs: q.pcrs,
    details,
  }
}
