// express ships no types and @types/express is not installed: the few members the test MCP
// server (test/oauth/mcp-server.ts) uses, typed as express 5 documents them.
declare module 'express' {
  import type { IncomingMessage, ServerResponse, Server } from 'node:http'
  import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
  export interface Request extends IncomingMessage {
    body?: unknown
    /** Set by the SDK's requireBearerAuth. */
    auth?: AuthInfo
  }
  export interface Response extends ServerResponse {
    set(name: string, value: string): Response
    status(code: number): Response
    json(body: unknown): Response
  }
  export type NextFunction = (err?: unknown) => void
  export type RequestHandler = (req: Request, res: Response, next: NextFunction) => unknown
  export interface Express {
    use(...handlers: RequestHandler[]): Express
    post(path: string, ...handlers: RequestHandler[]): Express
    listen(port: number, host: string, cb: () => void): Server
  }
  interface ExpressFactory {
    (): Express
    json(): RequestHandler
  }
  const express: ExpressFactory
  export default express
}
