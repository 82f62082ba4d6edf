// TPM attestation-key registration by credential activation (the Keylime registrar's flow):
// the EK certificate must chain to a configured TPM manufacturer CA, the AK must be a
// restricted signing key, and the AK is admitted only after the workload returns the secret that
// only its TPM could recover with TPM2_ActivateCredential. The name the registrant asks for binds
// only with an authority's say (src/broker/enrolment.ts); otherwise the AK stays pending.
// routes/tpm.ts serves these two steps as POST /v1/tpm/register and /v1/tpm/activate.
import { randomBytes, randomUUID } from 'node:crypto'
import type { z } from 'zod'
import { KeywardError } from '../errors.js'
import type { BrokerDeps } from './deps.js'
import * as S from '../protocol/wire.js'
import { constantTimeEqual, fromB64, fromHex, sha256, toHex } from '../util/bytes.js'
import { enforceCap, type Noise } from './abuse.js'
import { parseTpmPublic, akName, checkAkAttributes, makeCredential, verifyEkCertificate, publicKeyOf } from '../verifiers/tpm/index.js'
import { assertEkNotDenied, ekPublicDigest, enrolmentFor, enrolTokenHash } from './enrolment.js'

const ACTIVATION_TTL_MS = 120_000

/** Step 1: checks the EK certificate and the AK, and answers a credential only that TPM can activate. */
export async function registerTpmAk(deps: BrokerDeps, body: z.infer<typeof S.TpmRegisterRequest>): Promise<{ activationId: string; credential: string; expiresAt: string }> {
  const ekPub = parseTpmPublic(decode(body.ekPub, 'ekPub'))
  const akPubBytes = decode(body.akPub, 'akPub')
  const akPub = parseTpmPublic(akPubBytes)
  checkAkAttributes(akPub)
  if (!body.ekCert) throw new KeywardError('ERR_EK_UNTRUSTED', 'an EK certificate from a trusted TPM manufacturer CA is required')
  const ek = verifyEkCertificate(
    { certificate: decode(body.ekCert, 'ekCert'), ekPublic: ekPub },
    { roots: deps.trust.ekRoots, intermediates: deps.trust.ekIntermediates, now: deps.clock(), skewMs: deps.config.clockSkewSeconds * 1000 },
  )
  const ekFingerprint = ek.certificate.fingerprint
  const ekPubDigest = ekPublicDigest(publicKeyOf(ekPub))
  await assertEkNotDenied(deps.store, { ekFingerprint, ekPubDigest })
  const name = akName(akPub)
  const secret = randomBytes(32)
  const credential = makeCredential(ekPub, name, secret).file
  const id = randomUUID()
  const now = deps.clock().getTime()
  await enforceCap(
    () => deps.store.countActivations(),
    () => deps.store.pruneActivations(now),
    deps.config.limits.maxPendingActivations,
    'credential activations',
    ACTIVATION_TTL_MS / 1000,
  )
  await deps.store.insertActivation({
    id,
    akName: toHex(name),
    secretHash: toHex(sha256(secret)),
    workload: body.workload,
    publicArea: body.akPub,
    ekFingerprint,
    expiresAt: now + ACTIVATION_TTL_MS,
    usedAt: null,
    enrolTokenHash: body.enrolToken ? enrolTokenHash(body.enrolToken) : null,
    ekPubDigest,
  })
  await deps.audit({
    type: 'tpm.register',
    subject: toHex(name),
    decision: 'info',
    detail: { workload: body.workload, ekFingerprint, ekPubDigest, activationId: id, enrolToken: body.enrolToken !== undefined },
  })
  return { activationId: id, credential: Buffer.from(credential).toString('base64'), expiresAt: new Date(now + ACTIVATION_TTL_MS).toISOString() }
}

/** Step 2: the recovered secret proves the AK lives in that TPM; the AK is stored enrolled or pending. */
export async function activateTpmAk(
  deps: BrokerDeps,
  body: z.infer<typeof S.TpmActivateRequest>,
  caller: { reqId: string; noise: Noise },
): Promise<{ akName: string; workload: string; status: string; reason?: string }> {
  const row = await deps.store.consumeActivation(body.activationId, deps.clock().getTime())
  const got = decode(body.secret, 'secret')
  if (!row) {
    // Unknown, used or expired activation id: nothing to attribute it to, so noise, not audit.
    caller.noise('/v1/tpm/activate', 'ERR_CREDENTIAL_ACTIVATION', caller.reqId)
    throw new KeywardError('ERR_CREDENTIAL_ACTIVATION', 'credential activation failed')
  }
  if (!constantTimeEqual(sha256(got), fromHex(row.secretHash)!)) {
    await deps.audit({ type: 'tpm.activate', subject: row?.akName ?? body.activationId, decision: 'deny', detail: { code: 'ERR_CREDENTIAL_ACTIVATION' } })
    throw new KeywardError('ERR_CREDENTIAL_ACTIVATION', 'credential activation failed')
  }
  await assertEkNotDenied(deps.store, row)
  const existing = await deps.store.getAk(row.akName)
  if (existing) {
    // Re-registering a known AK changes nothing: its name and status stay what an authority set.
    await deps.audit({ type: 'tpm.activate', subject: row.akName, decision: 'info', detail: { workload: row.workload, status: existing.status, existing: true } })
    return { akName: existing.name, workload: existing.workload, status: existing.status }
  }
  const enrolment = await enrolmentFor(deps, row)
  await deps.store.putAk({
    name: row.akName,
    publicArea: row.publicArea,
    workload: row.workload,
    via: 'credential-activation',
    ekFingerprint: row.ekFingerprint,
    createdAt: deps.clock().getTime(),
    revokedAt: null,
    status: enrolment.status,
    enrolledBy: enrolment.enrolledBy,
    ekPubDigest: row.ekPubDigest,
  })
  await deps.audit({ type: 'tpm.activate', subject: row.akName, decision: enrolment.status === 'enrolled' ? 'allow' : 'info', detail: { workload: row.workload, ...enrolment } })
  return { akName: row.akName, workload: row.workload, status: enrolment.status, ...(enrolment.reason ? { reason: enrolment.reason } : {}) }
}

function decode(s: string, what: string): Uint8Array {
  const b = fromB64(s)
  if (!b) throw new KeywardError('ERR_BAD_REQUEST', `${what} is not base64`)
  return b
}
