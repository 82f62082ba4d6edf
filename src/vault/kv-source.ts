// Vault KV v2 as a secret source: a stored secret may reference a KV path (and version) instead
// of holding a value; the value is read at release time (Vault API docs, secret/kv/kv-v2
// "Read secret version") and released like any stored secret.
import { z } from 'zod'
import { KeywardError } from '../errors.js'
import type { VaultClient } from './client.js'

export const kvSecretRefSchema = z
  .object({
    kind: z.literal('vault-kv2').optional(),
    mount: z.string().min(1).max(128),
    path: z.string().min(1).max(2048),
    version: z.number().int().positive().optional(),
    field: z.string().min(1).max(256).optional(),
  })
  .strict()
export type KvSecretRef = z.infer<typeof kvSecretRefSchema>

/** Parses SecretVersionRow.source (JSON) into a reference; ERR_BAD_REQUEST when it is not one. */
export function parseKvSecretRef(source: string): KvSecretRef {
  let json: unknown
  try {
    json = JSON.parse(source)
  } catch {
    throw new KeywardError('ERR_BAD_REQUEST', 'secret source is not JSON')
  }
  const r = kvSecretRefSchema.safeParse(json)
  if (!r.success) throw new KeywardError('ERR_BAD_REQUEST', 'invalid Vault KV reference', { detail: { issues: r.error.issues.map((i) => i.path.join('.')) } })
  return r.data
}

/**
 * The bytes to release: the field's value (a string as UTF-8, anything else as JSON), or the JSON
 * of the whole data map when no field is named. Missing field, deleted or destroyed version and
 * missing path are ERR_NOT_FOUND; Vault failures keep their ERR_VAULT_* codes. Returns also the
 * version read, so the release can name it.
 */
export async function readKvSecretVersioned(client: Pick<VaultClient, 'kvRead'>, refIn: KvSecretRef): Promise<{ value: Uint8Array; version: number }> {
  const r = kvSecretRefSchema.safeParse(refIn)
  if (!r.success) throw new KeywardError('ERR_BAD_REQUEST', 'invalid Vault KV reference')
  const ref = r.data
  const { data, version } = await client.kvRead(ref.mount, ref.path, ref.version)
  let out: string
  if (ref.field === undefined) out = JSON.stringify(data)
  else {
    if (!Object.hasOwn(data, ref.field)) throw new KeywardError('ERR_NOT_FOUND', 'field not present in Vault KV secret', { detail: { mount: ref.mount, path: ref.path, field: ref.field, version } })
    const v = data[ref.field]
    out = typeof v === 'string' ? v : JSON.stringify(v)
  }
  return { value: new TextEncoder().encode(out), version }
}

export async function readKvSecret(client: Pick<VaultClient, 'kvRead'>, ref: KvSecretRef): Promise<Uint8Array> {
  return (await readKvSecretVersioned(client, ref)).value
}
