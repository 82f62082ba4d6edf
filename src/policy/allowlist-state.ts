// Judging the exec-allowlist state of a TPM host (docs/allowlist-state.md): the boot records
// must replay to the quoted PCR and have the one accepted shape, and the agent's statement must be
// signed by the key of its load record and cover this attestation. The encoding is src/protocol's.
import { createPublicKey, verify as verifySignature } from 'node:crypto'
import { KeywardError, EvidenceMalformedError } from '../errors.js'
import { constantTimeEqual, sha256, toB64url, toHex } from '../util/bytes.js'
import { CGROUP_DENIALS_UNKNOWN, MAX_ALLOWLIST_RECORDS, decodeRecord, decodeStatement } from '../protocol/allowlist-state.js'

/** What the broker established about the host's exec-allowlist (docs/allowlist-state.md). */
export interface AllowlistFacts {
  /** False when the host has no agent (no load record) or the workload presented no state. */
  present: boolean
  /** 'unloaded': the agent's last record says it removed the program (docs/allowlist-state.md). */
  mode: 'enforce' | 'audit' | 'unloaded' | 'none'
  /** Lowercase hex of the allowlist digest, "" when absent. */
  allowlistDigest: string
  /** Host-wide denials since load, as the agent read them for this attestation; -1 when absent. */
  denials: bigint
  /** Lowercase hex of the 8-byte BPF program tag, "" when absent. */
  progTag: string
  /** Nanoseconds since boot at program load; -1 when absent. */
  loadTime: bigint
  /** True when the boot records replayed to the quoted PCR and the statement verified. */
  replayed: boolean
  /** Lowercase hex SHA-256 of the signed statement (the binding's `state` part), "" when absent. */
  stateDigest: string
  /** Denials in the requesting workload's cgroup; -1 when the agent cannot count per cgroup. */
  cgroupDenials: bigint
}

export const ABSENT_ALLOWLIST: Readonly<AllowlistFacts> = Object.freeze({
  present: false,
  mode: 'none',
  allowlistDigest: '',
  denials: -1n,
  progTag: '',
  loadTime: -1n,
  replayed: false,
  stateDigest: '',
  cgroupDenials: -1n,
})

function untrusted(reason: string, message: string, detail: Record<string, unknown> = {}): KeywardError {
  return new KeywardError('ERR_ALLOWLIST_UNTRUSTED', message, { detail: { reason, ...detail } })
}

function p256PublicKey(point: Uint8Array): ReturnType<typeof createPublicKey> {
  try {
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: toB64url(point.subarray(1, 33)), y: toB64url(point.subarray(33, 65)) }, format: 'jwk' })
  } catch {
    throw untrusted('agent-key', 'the load record agent key is not a P-256 point')
  }
}

export interface AllowlistEvidence {
  records: ReadonlyArray<Uint8Array>
  statement: Uint8Array | undefined
}

/**
 * Judges the allowlist state of a TPM host. The caller owes `quoted` (the PCR value) from a verified
 * quote, and `nonce`/`jkt` of this attestation. In order:
 *  1. the records replay to the quoted PCR from 32 zero bytes (ERR_ALLOWLIST_REPLAY);
 *  2. their shape is exactly LOAD, SEPARATOR: no records at all means no agent (absent facts);
 *     anything else — a record after the separator, a second load, no separator — is
 *     ERR_ALLOWLIST_UNTRUSTED naming the record index (only the boot-time agent writes before
 *     the separator, docs/allowlist-state.md §Why this is trusted);
 *  3. the statement is signed by the load record's agent key, covers this nonce and key, and
 *     describes the loaded program (ERR_ALLOWLIST_UNTRUSTED otherwise).
 */
export function judgeAllowlistState(ev: AllowlistEvidence, quoted: Uint8Array, binding: { nonce: Uint8Array; jkt: Uint8Array }): AllowlistFacts {
  if (quoted.length !== 32) throw new EvidenceMalformedError('quoted allowlist PCR must be 32 bytes (SHA-256 bank)')
  if (ev.records.length > MAX_ALLOWLIST_RECORDS) throw new EvidenceMalformedError(`allowlist log: more than ${MAX_ALLOWLIST_RECORDS} records`)
  let pcr: Uint8Array = new Uint8Array(32)
  for (const b of ev.records) pcr = sha256(pcr, sha256(b))
  if (!constantTimeEqual(pcr, quoted)) {
    throw new KeywardError('ERR_ALLOWLIST_REPLAY', 'allowlist records do not replay to the quoted PCR', {
      detail: { records: ev.records.length, replayed: toHex(pcr), quoted: toHex(quoted) },
    })
  }
  if (ev.records.length === 0) {
    if (ev.statement) throw untrusted('no-agent', 'a statement without a load record: no agent measured this boot')
    return { ...ABSENT_ALLOWLIST }
  }
  // Decoded in order up to the separator: whatever follows it is untrusted whatever it says.
  const load = decodeRecord(ev.records[0]!, 0)
  if (load.kind !== 'load') throw untrusted('no-load-record', 'the first allowlist record is not a load record', { index: 0 })
  const second = ev.records[1]
  if (!second) throw untrusted('no-separator', 'the allowlist records have no separator: the workload phase was never marked')
  if (decodeRecord(second, 1).kind !== 'separator') throw untrusted('second-load', 'record 1 is a second load record before the separator', { index: 1 })
  if (ev.records.length > 2) throw untrusted('after-separator', 'record 2 was extended after the separator', { index: 2, after: ev.records.length - 2 })
  if (!ev.statement) throw untrusted('no-statement', 'the agent measured this boot but no signed statement was presented')

  const { body, signed, signature } = decodeStatement(ev.statement)
  if (!verifySignature('sha256', signed, { key: p256PublicKey(load.agentKey), dsaEncoding: 'ieee-p1363' }, signature)) {
    throw untrusted('statement-signature', 'the statement is not signed by the agent key of the load record')
  }
  if (!constantTimeEqual(body.nonce, binding.nonce) || !constantTimeEqual(body.jkt, binding.jkt)) {
    throw untrusted('statement-binding', 'the statement was made for another challenge or key')
  }
  if (
    !constantTimeEqual(body.allowlistDigest, load.allowlistDigest) ||
    body.mode !== load.mode ||
    !constantTimeEqual(body.progTag, load.progTag) ||
    body.loadTime !== load.loadTime
  ) {
    throw untrusted('statement-program', 'the statement describes another program than the load record')
  }
  return {
    present: true,
    mode: body.mode,
    allowlistDigest: toHex(body.allowlistDigest),
    denials: body.denials,
    progTag: toHex(body.progTag),
    loadTime: body.loadTime,
    replayed: true,
    stateDigest: toHex(sha256(ev.statement)),
    cgroupDenials: body.cgroupDenials === CGROUP_DENIALS_UNKNOWN ? -1n : body.cgroupDenials,
  }
}
