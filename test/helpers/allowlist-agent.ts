// A stand-in for the C agent (enclave-client/ebpf/agent.c) speaking the same documented formats
// (docs/allowlist-state.md): a P-256 key made at "boot", its LOAD and SEPARATOR records, and
// statements signed for a nonce and key. Tests use it to build honest state and forgeries alike.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { createServer, type Server } from 'node:net'
import { encodeRecord, encodeStatementBody, type AllowlistMode, type Statement } from '../../src/protocol/allowlist-state.js'
import { concatBytes, fromB64url, toHex } from '../../src/util/bytes.js'

export interface TestAgent {
  key: KeyObject
  publicPoint: Uint8Array
  load: Uint8Array
  separator: Uint8Array
  /** Boot records as the agent extends them: LOAD then SEPARATOR. */
  records: Uint8Array[]
  program: { allowlistDigest: Uint8Array; mode: AllowlistMode; progTag: Uint8Array; loadTime: bigint }
  statement(nonce: Uint8Array, jkt: Uint8Array, over?: Partial<Statement>): Uint8Array
  runtimeState(nonce: Uint8Array, jkt: Uint8Array, over?: Partial<Statement>): { allowlist: { records: string[]; statement: string } }
}

export function makeAgent(program: TestAgent['program']): TestAgent {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = publicKey.export({ format: 'jwk' })
  const publicPoint = concatBytes(new Uint8Array([4]), fromB64url(jwk.x!)!, fromB64url(jwk.y!)!)
  const load = encodeRecord({ kind: 'load', ...program, agentKey: publicPoint })
  const separator = encodeRecord({ kind: 'separator' })
  const agent: TestAgent = {
    key: privateKey,
    publicPoint,
    load,
    separator,
    records: [load, separator],
    program,
    statement(nonce, jkt, over = {}) {
      const body = encodeStatementBody({ nonce, jkt, ...program, denials: 0n, cgroupId: 0n, cgroupDenials: (1n << 64n) - 1n, linkId: 7, progId: 9, ...over })
      return concatBytes(body, new Uint8Array(sign('sha256', body, { key: privateKey, dsaEncoding: 'ieee-p1363' })))
    },
    runtimeState(nonce, jkt, over) {
      return { allowlist: { records: agent.records.map(toHex), statement: toHex(agent.statement(nonce, jkt, over)) } }
    },
  }
  return agent
}

/** Serves the agent's socket protocol: 64 bytes (nonce || jkt) in, one JSON line out. */
export function serveAgent(agent: TestAgent, path: string, over: () => Partial<Statement> = () => ({})): Promise<Server> {
  const srv = createServer((sock) => {
    const chunks: Buffer[] = []
    sock.on('data', (d: Buffer) => chunks.push(d))
    sock.on('end', () => {
      const req = Buffer.concat(chunks)
      if (req.length !== 64) return sock.end(JSON.stringify({ error: 'expected 64 bytes' }) + '\n')
      const st = agent.runtimeState(req.subarray(0, 32), req.subarray(32), over())
      sock.end(JSON.stringify({ records: st.allowlist.records, statement: st.allowlist.statement }) + '\n')
    })
  })
  return new Promise((resolve) => srv.listen(path, () => resolve(srv)))
}
