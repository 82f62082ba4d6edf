// Guest side of the lab's broker channel: an HTTP listener on the guest's loopback that turns
// each request into one JSON line on the virtio-serial port "keyward" and answers with the
// host relay's line (scripts/lab/relay.mjs; same framing as kw_request in lib.sh). It lets
// the unmodified keyward-client (fetch/undici) reach the broker although the guest has no
// network: only `lo` is up. Listen on the broker's own port number, so the URL the client
// signs into DPoP proofs (htu, RFC 9449 §4.2) is the URL the broker sees behind the relay.
//   node /lab/vport-http.mjs PORT        (prints "ready" on stdout once listening)
import { createServer } from 'node:http'
import { createReadStream, createWriteStream, openSync, readdirSync, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('usage: vport-http.mjs PORT')
  process.exit(2)
}
const dev = readdirSync('/sys/class/virtio-ports')
  .filter((d) => readFileSync(`/sys/class/virtio-ports/${d}/name`, 'utf8').trim() === 'keyward')
  .map((d) => `/dev/${d}`)[0]
if (!dev) {
  console.error('vport-http: no virtio-serial port named keyward')
  process.exit(1)
}
// A virtio console port can be open only once: one fd for both directions.
const fd = openSync(dev, 'r+')
const out = createWriteStream(null, { fd, autoClose: false })
const pending = new Map()
let nextId = 1
createInterface({ input: createReadStream(null, { fd, autoClose: false }), crlfDelay: Infinity }).on('line', (line) => {
  let m
  try {
    m = JSON.parse(line)
  } catch {
    return
  }
  const done = pending.get(m.id)
  if (done) {
    pending.delete(m.id)
    done(m)
  }
})

// Hop-by-hop and framing headers are the local server's business, not the relayed ones.
const DROP = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'content-encoding', 'keep-alive'])
const keep = (h) => Object.fromEntries(Object.entries(h ?? {}).filter(([k]) => !DROP.has(k.toLowerCase())))

createServer((req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const id = nextId++
    pending.set(id, (m) => {
      if (!m.status) {
        res.writeHead(502, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { code: 'ERR_RELAY', message: String(m.error ?? 'relay failed') } }))
        return
      }
      res.writeHead(m.status, keep(m.headers))
      res.end(m.body ?? '')
    })
    const body = chunks.length > 0 ? Buffer.concat(chunks).toString('utf8') : undefined
    out.write(`${JSON.stringify({ id, method: req.method, path: req.url, headers: keep(req.headers), body })}\n`)
  })
}).listen(port, '127.0.0.1', () => console.log('ready'))
