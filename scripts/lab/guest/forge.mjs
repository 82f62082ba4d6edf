// A forging workload's tool (root in the guest): serves the agent socket protocol
// (docs/allowlist-state.md: 64 bytes in, one JSON line out) with state it assembled itself.
//   node /lab/forge.mjs merge REAL.sock FORGED.sock LISTEN.sock
//       the real agent's records, then the forger's own records (extended after the real
//       separator), with the forger's statement: the best a forger can do with an agent present
//   node /lab/forge.mjs norecords FORGED.sock LISTEN.sock
//       the forger's statement with no records at all: "there is no agent, trust my key"
//   node /lab/forge.mjs withsep SEPARATOR.json FORGED.sock LISTEN.sock
//       no agent at boot: the separator /init extended, then the forger's records and statement
import { createConnection, createServer } from 'node:net'
import { readFileSync, unlinkSync } from 'node:fs'

const [mode, ...socks] = process.argv.slice(2)
const ask = (path, req) =>
  new Promise((resolve, reject) => {
    const chunks = []
    const s = createConnection({ path }, () => s.end(req))
    s.on('data', (d) => chunks.push(d))
    s.on('error', reject)
    s.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())))
  })
const listen = socks.at(-1)
try { unlinkSync(listen) } catch {}
// allowHalfOpen: the client half-closes after its 64 bytes and waits for the answer.
createServer({ allowHalfOpen: true }, (c) => {
  const chunks = []
  c.on('data', (d) => chunks.push(d))
  c.on('end', async () => {
    const req = Buffer.concat(chunks)
    let out
    if (mode === 'merge') {
      const [real, forged] = await Promise.all([ask(socks[0], req), ask(socks[1], req)])
      out = { records: [...real.records, ...forged.records], statement: forged.statement }
    } else if (mode === 'withsep') {
      const forged = await ask(socks[1], req)
      out = { records: [JSON.parse(readFileSync(socks[0], 'utf8')).separator, ...forged.records], statement: forged.statement }
    } else {
      const forged = await ask(socks[0], req)
      out = { records: [], statement: forged.statement }
    }
    c.end(JSON.stringify(out) + '\n')
  })
}).listen(listen, () => console.log('ready'))
