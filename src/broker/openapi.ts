// /openapi.json, generated from the same zod schemas that validate requests.
import { z } from 'zod'
import * as S from '../protocol/wire.js'

type Op = { method: string; path: string; summary: string; body?: z.ZodType; response?: z.ZodType; auth?: 'dpop' | 'admin' | 'relying-party' }

const OPS: Op[] = [
  { method: 'post', path: '/v1/challenge', summary: 'Fresh single-use nonce', response: S.ChallengeResponse },
  { method: 'post', path: '/v1/attest', summary: 'Verify evidence and receive an EAR attestation result', body: S.AttestRequest, response: S.AttestResponse },
  { method: 'post', path: '/v1/appraise', summary: 'Relying party submits its client\'s evidence (background-check model)', body: S.AppraiseRequest, auth: 'relying-party' },
  { method: 'get', path: '/v1/secrets/{name}', summary: 'Release a granted secret as JWE to the bound key', response: S.ReleaseResponse, auth: 'dpop' },
  { method: 'post', path: '/v1/vault/token', summary: 'Vault token bound to the attested key', body: S.VaultTokenRequest, auth: 'dpop' },
  { method: 'post', path: '/v1/credentials/{tool}', summary: 'Short-lived tool credential for an AI agent', auth: 'dpop' },
  { method: 'post', path: '/v1/tpm/register', summary: 'Start AK registration by credential activation', body: S.TpmRegisterRequest },
  { method: 'post', path: '/v1/tpm/activate', summary: 'Finish AK registration with the activated secret', body: S.TpmActivateRequest },
  { method: 'put', path: '/v1/admin/secrets/{name}', summary: 'Store a new secret version (write-only)', body: S.PutSecretRequest, auth: 'admin' },
  { method: 'get', path: '/v1/admin/secrets', summary: 'List secrets (names and versions only)', auth: 'admin' },
  { method: 'delete', path: '/v1/admin/secrets/{name}', summary: 'Delete a secret', auth: 'admin' },
  { method: 'post', path: '/v1/admin/policies', summary: 'Apply a policy', body: S.ApplyPolicyRequest, auth: 'admin' },
  { method: 'get', path: '/v1/admin/policies', summary: 'List active policies', auth: 'admin' },
  { method: 'post', path: '/v1/admin/reference-values', summary: 'Add a reference value with provenance', body: S.ReferenceValueRequest, auth: 'admin' },
  { method: 'get', path: '/v1/admin/reference-values', summary: 'List reference values', auth: 'admin' },
  { method: 'delete', path: '/v1/admin/reference-values/{id}', summary: 'Revoke a reference value (and what was granted on it)', auth: 'admin' },
  { method: 'post', path: '/v1/admin/aks', summary: 'Pin a TPM attestation key for a workload', body: S.PinAkRequest, auth: 'admin' },
  { method: 'delete', path: '/v1/admin/credentials/{kind}/{name}', summary: 'Revoke an admin or relying-party credential (at once, on every replica)', auth: 'admin' },
  { method: 'get', path: '/v1/admin/enrolments', summary: 'Pending TPM enrolments', auth: 'admin' },
  { method: 'post', path: '/v1/admin/enrolments/tokens', summary: 'Issue a single-use enrolment token for a workload name', body: S.EnrolmentTokenRequest, auth: 'admin' },
  { method: 'post', path: '/v1/admin/enrolments/{ak}/approve', summary: 'Approve a pending enrolment', auth: 'admin' },
  { method: 'post', path: '/v1/admin/enrolments/{ak}/reject', summary: 'Reject a pending enrolment', auth: 'admin' },
  { method: 'get', path: '/v1/admin/eks', summary: 'The EK allow/deny list', auth: 'admin' },
  { method: 'post', path: '/v1/admin/eks', summary: 'Allow an EK to enrol as a workload name', body: S.EkAllowRequest, auth: 'admin' },
  { method: 'delete', path: '/v1/admin/eks/{id}', summary: 'Remove an EK list entry', auth: 'admin' },
  { method: 'delete', path: '/v1/admin/eks/denied/{ek}', summary: 'Lift the denial of an EK', auth: 'admin' },
  { method: 'post', path: '/v1/admin/aks/{name}/revoke', summary: 'Revoke an AK, its attestations and Vault tokens; optionally deny its EK', body: S.RevokeAkRequest, auth: 'admin' },
  { method: 'get', path: '/v1/admin/workloads', summary: 'Declared versus actual state per workload', auth: 'admin' },
  { method: 'get', path: '/v1/admin/audit', summary: 'Audit entries', auth: 'admin' },
  { method: 'get', path: '/v1/admin/audit/verify', summary: 'Verify the audit hash chain', auth: 'admin' },
  { method: 'post', path: '/v1/admin/keys/rotate', summary: 'Rotate the token signing key', auth: 'admin' },
  { method: 'post', path: '/v1/admin/keys/rotate-kek', summary: 'Rotate the key-encryption key and re-wrap every data key', auth: 'admin' },
]

function schemaOf(s: z.ZodType): unknown {
  return z.toJSONSchema(s, { unrepresentable: 'any', io: 'input' })
}

let cached: unknown
export function buildOpenApi(): unknown {
  if (cached) return cached
  const paths: Record<string, Record<string, unknown>> = {}
  for (const op of OPS) {
    const security = op.auth === 'dpop' ? [{ dpop: [] }] : op.auth ? [{ bearer: [] }] : []
    paths[op.path] ??= {}
    paths[op.path]![op.method] = {
      summary: op.summary,
      security,
      ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(op.body) } } } } : {}),
      responses: {
        '200': { description: 'OK', ...(op.response ? { content: { 'application/json': { schema: schemaOf(op.response) } } } : {}) },
        default: { description: 'Error', content: { 'application/json': { schema: schemaOf(S.ErrorResponse) } } },
      },
    }
  }
  cached = {
    openapi: '3.1.0',
    info: { title: 'keyward', version: '1' },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        dpop: { type: 'apiKey', in: 'header', name: 'DPoP', description: 'Authorization: DPoP <attestation token> plus a DPoP proof (RFC 9449)' },
      },
    },
    paths,
  }
  return cached
}
