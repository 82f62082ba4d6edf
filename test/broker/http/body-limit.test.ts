// The body limit over a real socket, as @hono/node-server hands requests to the app: a body with a
// Content-Length is judged by that header (Node's parser reads exactly that many bytes), a chunked
// body is counted as it streams, and either way a body under the limit still reaches the route
// intact. routes.test.ts checks the same codes through app.request(), which never meets Node's parser.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { connect } from 'node:net'
import { startHarness, type Harness } from '../harness.js'

const LIMIT = 1024

/** Sends raw HTTP/1.1 bytes and resolves with the status and the JSON body of the first answer. */
function rawRequest(url: string, head: string, body: Buffer[]): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname)
    const chunks: Buffer[] = []
    sock.on('data', (d: Buffer) => chunks.push(d))
    // The server may answer a body it refuses before the client finished sending it.
    sock.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e)))
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1])
      const sep = text.indexOf('\r\n\r\n')
      const rest = text.slice(sep + 4)
      // The broker answers with a Content-Length; the connection is closed by Connection: close.
      resolve({ status, body: rest.startsWith('{') ? (JSON.parse(rest) as { error?: { code: string; message: string } }) : {} })
    })
    sock.write(head)
    for (const b of body) sock.write(b)
  })
}

/** A JSON body of exactly n bytes that fails the attest schema at `tee`. */
const json = (n: number): string => {
  const body = JSON.stringify({ tee: 'sgx', pad: 'x'.repeat(n - 22) })
  if (Buffer.byteLength(body) !== n) throw new Error('body size')
  return body
}
const chunked = (body: string, parts: number): Buffer[] => {
  const size = Math.ceil(body.length / parts)
  const out: Buffer[] = []
  for (let i = 0; i < body.length; i += size) {
    const piece = body.slice(i, i + size)
    out.push(Buffer.from(`${Buffer.byteLength(piece).toString(16)}\r\n${piece}\r\n`))
  }
  out.push(Buffer.from('0\r\n\r\n'))
  return out
}
const head = (extra: string): string => `POST /v1/attest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n${extra}\r\n`

describe('request body limit over a socket', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness('sqlite', { maxBodyBytes: LIMIT })
  })
  afterAll(async () => {
    await h?.stop()
  })

  it('a body with a Content-Length of exactly the limit reaches the route whole (its schema error names the field)', async () => {
    const body = json(LIMIT)
    const r = await rawRequest(h.url, head(`Content-Length: ${Buffer.byteLength(body)}\r\n`), [Buffer.from(body)])
    expect(r.status).toBe(400)
    expect(r.body.error?.code).toBe('ERR_BAD_REQUEST')
    expect(r.body.error?.message).toMatch(/tee/)
  })

  it('a Content-Length over the limit is 413 ERR_BODY_TOO_LARGE', async () => {
    const body = json(LIMIT + 1)
    const r = await rawRequest(h.url, head(`Content-Length: ${Buffer.byteLength(body)}\r\n`), [Buffer.from(body)])
    expect(r).toMatchObject({ status: 413, body: { error: { code: 'ERR_BODY_TOO_LARGE', message: `request body exceeds ${LIMIT} bytes` } } })
  })

  it('a chunked body of exactly the limit reaches the route whole', async () => {
    const r = await rawRequest(h.url, head('Transfer-Encoding: chunked\r\n'), chunked(json(LIMIT), 4))
    expect(r.status).toBe(400)
    expect(r.body.error?.code).toBe('ERR_BAD_REQUEST')
    expect(r.body.error?.message).toMatch(/tee/)
  })

  it('a chunked body over the limit is 413 ERR_BODY_TOO_LARGE although no header declares its size', async () => {
    const r = await rawRequest(h.url, head('Transfer-Encoding: chunked\r\n'), chunked(json(LIMIT * 3), 6))
    expect(r).toMatchObject({ status: 413, body: { error: { code: 'ERR_BODY_TOO_LARGE' } } })
  })

  it('a request with both Content-Length and Transfer-Encoding is refused before it reaches the app', async () => {
    // A small Content-Length must not let a large chunked body past the limit (request smuggling).
    const r = await rawRequest(h.url, head('Content-Length: 10\r\nTransfer-Encoding: chunked\r\n'), chunked(json(LIMIT * 3), 6))
    expect(r.status).toBe(400)
  })
})
