// A scriptable HTTP server on 127.0.0.1 for client tests: each request goes to a handler that
// returns status and JSON body (or hangs / drops the connection), and every request is recorded.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Recorded {
  method: string
  path: string
  headers: IncomingMessage['headers']
  body: unknown
  url: string
}

export type Reply = { status: number; body?: unknown } | 'hang' | 'drop'
export type Handler = (req: Recorded, n: number) => Reply | Promise<Reply>

export interface TestServer {
  url: string
  requests: Recorded[]
  close(): Promise<void>
}

export async function startServer(handler: Handler): Promise<TestServer> {
  const requests: Recorded[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const rec: Recorded = {
        method: req.method ?? '',
        path: (req.url ?? '').split('?')[0]!,
        headers: req.headers,
        body: text ? (JSON.parse(text) as unknown) : undefined,
        url: `http://${req.headers.host}${req.url}`,
      }
      requests.push(rec)
      void Promise.resolve(handler(rec, requests.length)).then((r) => {
        if (r === 'hang') return
        if (r === 'drop') return req.socket.destroy()
        res.writeHead(r.status, { 'content-type': 'application/json' })
        res.end(r.body === undefined ? '' : JSON.stringify(r.body))
      })
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}
