// The body validators of the HTTP API, each with a zod schema (src/protocol/wire.ts for JSON),
// answering with the broker's stable codes. Handlers read the parsed body with c.req.valid('json')
// or c.req.valid('form'), typed from the schema.
// jsonBody: hono's validator('json')
//   not application/json   → 415 ERR_UNSUPPORTED_MEDIA_TYPE
//   not JSON               → 400 ERR_BAD_REQUEST "body is not valid JSON"
//   fails the schema       → 400 ERR_BAD_REQUEST "invalid request at <path>: <issue>" (the first issue)
// formBody: application/x-www-form-urlencoded (RFC 6749 §3.2, for the OAuth endpoints)
//   another media type     → 415 ERR_UNSUPPORTED_MEDIA_TYPE
//   a repeated parameter   → 400 ERR_BAD_REQUEST "parameter <name> repeated" (RFC 6749 §3.2)
//   fails the schema       → 400 ERR_BAD_REQUEST "invalid request at <path>: <issue>" (the first issue)
import type { MiddlewareHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { validator } from 'hono/validator'
import type { z } from 'zod'
import { KeywardError } from '../../errors.js'
import type { Env } from './context.js'

type JsonInput<S extends z.ZodType> = { in: { json: z.input<S> }; out: { json: z.output<S> } }
type FormInput<S extends z.ZodType> = { in: { form: z.input<S> }; out: { form: z.output<S> } }

/** The media type of a Content-Type header without its parameters, lower case. */
const mediaType = (contentType: string | undefined): string => (contentType ?? '').split(';')[0]!.trim().toLowerCase()

function parseBody<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  const issue = r.error.issues[0]!
  throw new KeywardError('ERR_BAD_REQUEST', `invalid request at ${issue.path.map(String).join('.') || '(body)'}: ${issue.message}`)
}

export function jsonBody<S extends z.ZodType, E extends Env = Env>(schema: S): MiddlewareHandler<E, string, JsonInput<S>> {
  // The typed view of the parsed body is this middleware's (JsonInput<S>); hono's own inference is not needed.
  const validate: MiddlewareHandler = validator('json', (value: unknown): unknown => parseBody(schema, value))
  return async function jsonBody(c, next) {
    if (mediaType(c.req.header('content-type')) !== 'application/json') {
      throw new KeywardError('ERR_UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/json')
    }
    let parsed = false
    try {
      return await validate(c, async () => {
        parsed = true
        await next()
      })
    } catch (e) {
      // hono's validator throws HTTPException(400) for a body that is not JSON, before next().
      if (!parsed && e instanceof HTTPException) throw new KeywardError('ERR_BAD_REQUEST', 'body is not valid JSON')
      throw e
    }
  }
}

export function formBody<S extends z.ZodType, E extends Env = Env>(schema: S): MiddlewareHandler<E, string, FormInput<S>> {
  return async function formBody(c, next) {
    if (mediaType(c.req.header('content-type')) !== 'application/x-www-form-urlencoded') {
      throw new KeywardError('ERR_UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/x-www-form-urlencoded')
    }
    const form: Record<string, string> = {}
    for (const [k, v] of new URLSearchParams(await c.req.text())) {
      if (k in form) throw new KeywardError('ERR_BAD_REQUEST', `parameter ${k.slice(0, 64)} repeated`)
      // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
      if (v !== '') form[k] = v
    }
    c.req.addValidatedData('form', parseBody(schema, form) as object)
    await next()
  }
}
