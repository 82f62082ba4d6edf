// KBS resource paths (`/kbs/v0/resource/<repository>/<type>/<tag>`) as keyward secret names and
// policy grants: `kbs:///<repository>/<type>/<tag>`, the resource URI form guest-components use
// (confidential-data-hub `kbs:///repo/type/tag`). Every segment is 1–128 of [A-Za-z0-9._-] not
// starting with a dot, so no segment is `.`/`..`, none holds `/`, `%`, `\` or NUL, and a name
// maps to exactly one path and back.
import { KeywardError } from '../../errors.js'

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/
export const KBS_SECRET_PREFIX = 'kbs:///'

/** The secret name for a raw (still percent-encoded) resource path `repo/type/tag`; ERR_NOT_FOUND for anything else. */
export function kbsSecretName(rawPath: string): string {
  const parts = rawPath.split('/')
  if (parts.length !== 3 || !parts.every((p) => SEGMENT.test(p))) {
    throw new KeywardError('ERR_NOT_FOUND', 'a resource path is <repository>/<type>/<tag>, each 1–128 of [A-Za-z0-9._-] not starting with "."')
  }
  return `${KBS_SECRET_PREFIX}${parts.join('/')}`
}

/** Whether `name` is a well-formed `kbs:///repo/type/tag` secret name. */
export function isKbsSecretName(name: string): boolean {
  if (!name.startsWith(KBS_SECRET_PREFIX)) return false
  const parts = name.slice(KBS_SECRET_PREFIX.length).split('/')
  return parts.length === 3 && parts.every((p) => SEGMENT.test(p))
}
