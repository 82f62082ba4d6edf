#!/usr/bin/env node
// Host side of the lab's guest<->broker channel. qemu connects the guest's virtio-serial port
// "keyward" to the unix socket we listen on; the guest writes one JSON request per line,
//   {"id": n, "method": "POST", "path": "/v1/attest", "headers": {...}, "body": "<text>"}
// and we answer each with one line
//   {"id": n, "status": 200, "headers": {...}, "body": "<text>"}   (status 0 + "error" if fetch failed)
// after forwarding it with fetch to --target (the broker on 127.0.0.1). Only paths starting
// with "/" are forwarded, to the target origin only. Bodies are logged by size, never content.
//   node scripts/lab/relay.mjs --socket PATH --target http://127.0.0.1:PORT
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { unlinkSync } from 'node:fs'

const args = process.argv.slice(2)
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined }
const socketPath = opt('--socket')
const target = opt('--target')
if (!socketPath || !target || !/^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?$/.test(target)) {
  console.error('usage: relay.mjs --socket PATH --target http://127.0.0.1:PORT')
  process.exit(2)
}
const MAX_LINE = 4 << 20

const server = createServer((conn) => {
  console.error('relay: guest connected')
  const lines = createInterface({ input: conn, crlfDelay: Infinity })
  lines.on('line', async (line) => {
    if (line.trim() === '') return
    let req
    try {
      if (line.length > MAX_LINE) throw new Error('request too large')
      req = JSON.parse(line)
      if (typeof req.path !== 'string' || !req.path.startsWith('/') || req.path.startsWith('//')) throw new Error('bad path')
    } catch (e) {
      conn.write(JSON.stringify({ id: null, status: 0, error: String(e.message ?? e) }) + '\n')
      return
    }
    const t0 = Date.now()
    let out
    try {
      const res = await fetch(new URL(req.path, target), {
        method: req.method ?? 'GET', headers: req.headers ?? {},
        body: req.body === undefined || req.method === 'GET' ? undefined : String(req.body),
      })
      const body = await res.text()
      out = { id: req.id ?? null, status: res.status, headers: Object.fromEntries(res.headers), body }
    } catch (e) {
      out = { id: req.id ?? null, status: 0, error: String(e.message ?? e) }
    }
    console.error(`relay: ${req.method ?? 'GET'} ${req.path} -> ${out.status} (${out.body?.length ?? 0} B, ${Date.now() - t0} ms)`)
    conn.write(JSON.stringify(out) + '\n')
  })
  conn.on('error', () => {})
  conn.on('close', () => console.error('relay: guest disconnected'))
})
try { unlinkSync(socketPath) } catch {}
server.listen(socketPath, () => console.error(`relay: listening on ${socketPath} -> ${target}`))
const stop = () => { server.close(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
