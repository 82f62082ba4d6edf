// TPM 2.0 collector: quotes the configured PCRs with the binding digest as qualifying data
// (TPM2_Quote extraData, docs/protocol.md §Binding) through tpm2-tools, and registers its AK
// with the broker by credential activation (TPM 2.0 Part 1 §24, ActivateCredential).
//
// Keys: the EK is re-derived per process from the endorsement seed (default TCG template, so
// always the same key) unless a persistent handle is given; the AK's public and sealed private
// blobs live in the state dir (0700) and are loaded under the EK, so the AK survives reboots.
import { execFile } from 'node:child_process'
import { access, chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile, constants } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { fromB64 } from '../../../src/util/bytes.js'
import { CollectorError, ProtocolError } from '../errors.js'
import type { Collector, CollectRequest } from './types.js'
import * as A from './tpm-args.js'

export const DEFAULT_TCTI = 'device:/dev/tpmrm0'
export const DEFAULT_EVENT_LOG = '/sys/kernel/security/tpm0/binary_bios_measurements'

/** Runs one tool; injectable so tests can check the argv without a TPM. */
export type ToolRunner = (t: A.Tool, env: NodeJS.ProcessEnv) => Promise<string>

export interface TpmCollectorOptions {
  tcti?: string
  stateDir: string
  /** PCR selection in tpm2-tools syntax (default sha256:0-7 and 15). */
  pcrs?: string
  ekAlg?: A.TpmKeyAlg
  akAlg?: A.TpmKeyAlg
  /** A persistent EK handle (e.g. 0x81010001) instead of re-deriving the EK. */
  ekHandle?: string
  /** Event log to attach when readable; null: never attach one. */
  eventLogPath?: string | null
  runner?: ToolRunner
}

/** What the broker needs to start credential activation (`POST /v1/tpm/register`). */
export interface TpmRegistration {
  ekPub: string
  ekCert?: string
  akPub: string
}

/** Posts a JSON body to the broker and returns the parsed JSON answer (the client's HTTP layer). */
export type BrokerPost = (path: string, body: unknown) => Promise<unknown>

export interface TpmCollector extends Collector {
  readonly tee: 'tpm'
  registration(): Promise<TpmRegistration>
  /** Recovers the secret of a tpm2_makecredential blob; only this TPM with this EK and AK can. */
  activateCredential(credential: Uint8Array): Promise<Uint8Array>
  /** Full registration: register → activate credential → confirm. Returns the broker's answer. */
  register(post: BrokerPost, workload: string, enrolToken?: string): Promise<{ akName: string; workload: string; status: 'enrolled' | 'pending' | 'rejected'; reason?: string }>
}

const RegisterAnswer = z.object({ activationId: z.string().min(1), credential: z.string().min(1), expiresAt: z.string().optional() })
const ActivateAnswer = z.object({ akName: z.string(), workload: z.string(), status: z.enum(['enrolled', 'pending', 'rejected']), reason: z.string().optional() })

export const execTool: ToolRunner = (t, env) =>
  new Promise((resolve, reject) => {
    execFile(t.tool, t.args, { env, timeout: 60_000, maxBuffer: 8 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const tail = stderr.trim().split('\n').slice(-4).join(' | ')
        reject(new CollectorError(`${t.tool} failed${tail ? `: ${tail}` : ''}`, { cause: err, detail: { tool: t.tool, stderr: tail } }))
      } else resolve(stdout)
    })
  })

async function readable(p: string): Promise<boolean> {
  try {
    await access(p, constants.R_OK)
    return true
  } catch {
    return false
  }
}

/** A DER SEQUENCE's total length (NV indices may be larger than the certificate they hold). */
function trimDer(b: Uint8Array): Uint8Array {
  if (b.length < 2 || b[0] !== 0x30) return b
  const l0 = b[1]!
  if (l0 < 0x80) return b.subarray(0, Math.min(b.length, 2 + l0))
  const n = l0 & 0x7f
  if (n === 0 || n > 3 || b.length < 2 + n) return b
  let len = 0
  for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!
  return b.subarray(0, Math.min(b.length, 2 + n + len))
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

export function createTpmCollector(o: TpmCollectorOptions): TpmCollector {
  const tcti = A.checkTcti(o.tcti ?? DEFAULT_TCTI)
  const selection = A.parsePcrSelection(o.pcrs ?? A.DEFAULT_PCR_SELECTION)
  const ekAlg = o.ekAlg ?? 'rsa'
  const akAlg = o.akAlg ?? 'rsa'
  const run = o.runner ?? execTool
  const env = { ...process.env, TPM2TOOLS_TCTI: tcti }
  const flush = A.needsFlush(tcti)
  const f = {
    ek: join(o.stateDir, 'ek.ctx'),
    ekPub: join(o.stateDir, 'ek.pub'),
    ak: join(o.stateDir, 'ak.ctx'),
    akPub: join(o.stateDir, 'ak.pub'),
    akPriv: join(o.stateDir, 'ak.priv'),
    akName: join(o.stateDir, 'ak.name'),
  }
  let ready: Promise<string> | undefined
  // One TPM conversation at a time: swtpm serves one connection, and loaded objects are shared.
  let queue: Promise<unknown> = Promise.resolve()
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn, fn)
    queue = p.catch(() => undefined)
    return p
  }

  async function tool(t: A.Tool): Promise<string> {
    try {
      return await run(t, env)
    } finally {
      // Without a resource manager every tool leaves its transient objects loaded.
      if (flush) await run(A.flushArgs('-t'), env).catch(() => undefined)
    }
  }

  /** Runs `fn` with a fresh EK policy session, flushed afterwards. */
  async function withEkSession<T>(tmp: string, fn: (session: string) => Promise<T>): Promise<T> {
    const session = join(tmp, 'session.ctx')
    for (const t of A.ekSessionArgs(session)) await run(t, env)
    try {
      return await fn(session)
    } finally {
      await run(A.flushArgs(session), env).catch(() => undefined)
    }
  }

  async function tempDir(): Promise<string> {
    return mkdtemp(join(o.stateDir, 'op-'))
  }

  /** Ensures the EK and AK are loadable; returns the EK reference (context file or handle). */
  async function ensureKeys(): Promise<string> {
    await mkdir(o.stateDir, { recursive: true, mode: 0o700 })
    await chmod(o.stateDir, 0o700)
    let ek: string
    if (o.ekHandle) {
      ek = o.ekHandle
      await tool(A.readPublicArgs(ek, f.ekPub))
    } else {
      await tool(A.createEkArgs(ekAlg, f.ek, f.ekPub))
      ek = f.ek
    }
    const haveAk = (await readable(f.akPub)) && (await readable(f.akPriv))
    if (!haveAk) {
      await tool(A.createAkArgs(akAlg, ek, { ctx: f.ak, pub: f.akPub, priv: f.akPriv, name: f.akName }))
    } else {
      const tmp = await tempDir()
      try {
        await withEkSession(tmp, (s) => tool(A.loadAkArgs(ek, s, { ctx: f.ak, pub: f.akPub, priv: f.akPriv })))
      } catch (e) {
        throw new CollectorError(`cannot load the AK in ${o.stateDir} under this TPM's EK (state dir from another TPM?)`, { cause: e })
      } finally {
        await rm(tmp, { recursive: true, force: true })
      }
    }
    return ek
  }

  function keys(): Promise<string> {
    ready ??= ensureKeys().catch((e: unknown) => {
      ready = undefined
      throw e
    })
    return ready
  }

  async function eventLog(): Promise<string | undefined> {
    const p = o.eventLogPath === undefined ? DEFAULT_EVENT_LOG : o.eventLogPath
    if (p === null) return undefined
    try {
      const st = await stat(p)
      if (!st.isFile()) return undefined
      return b64(await readFile(p))
    } catch {
      return undefined // absent or not readable (securityfs needs root): the broker then appraises without it
    }
  }

  const collector: TpmCollector = {
    tee: 'tpm',

    async available() {
      if (!tcti.startsWith('device:')) return true
      return readable(tcti.slice('device:'.length))
    },

    collect: (req: CollectRequest) =>
      serial(async () => {
        await keys()
        const tmp = await tempDir()
        try {
          const out = { msg: join(tmp, 'quote.msg'), sig: join(tmp, 'quote.sig'), pcrs: join(tmp, 'quote.pcrs') }
          await tool(A.quoteArgs(f.ak, selection, req.binding, out))
          const evidence: Record<string, string> = {
            ak: b64(await readFile(f.akPub)),
            quote: b64(await readFile(out.msg)),
            signature: b64(await readFile(out.sig)),
            pcrs: b64(await readFile(out.pcrs)),
          }
          const log = await eventLog()
          if (log !== undefined) evidence.eventLog = log
          return evidence
        } finally {
          await rm(tmp, { recursive: true, force: true })
        }
      }),

    registration: () =>
      serial(async () => {
        await keys()
        const reg: TpmRegistration = { ekPub: b64(await readFile(f.ekPub)), akPub: b64(await readFile(f.akPub)) }
        const nv = A.EK_CERT_NV_INDEX[ekAlg]
        const handles = await run({ tool: 'tpm2_getcap', args: ['handles-nv-index'] }, env).catch(() => '')
        // tpm2_nvread of an absent index fails noisily; read only listed ones.
        if (new RegExp(`\\b0x${nv.toString(16)}\\b`, 'i').test(handles)) {
          const tmp = await tempDir()
          try {
            await tool(A.nvReadArgs(nv, join(tmp, 'ek.crt')))
            reg.ekCert = b64(trimDer(await readFile(join(tmp, 'ek.crt'))))
          } finally {
            await rm(tmp, { recursive: true, force: true })
          }
        }
        return reg
      }),

    activateCredential: (credential: Uint8Array) =>
      serial(async () => {
        const ek = await keys()
        const tmp = await tempDir()
        try {
          const inFile = join(tmp, 'cred.in')
          const outFile = join(tmp, 'cred.out')
          await writeFile(inFile, credential, { mode: 0o600 })
          await withEkSession(tmp, (s) => tool(A.activateCredentialArgs(f.ak, ek, s, inFile, outFile)))
          return new Uint8Array(await readFile(outFile))
        } finally {
          await rm(tmp, { recursive: true, force: true })
        }
      }),

    async register(post, workload, enrolToken) {
      const reg = await collector.registration()
      const started = RegisterAnswer.safeParse(await post('/v1/tpm/register', { workload, ...(enrolToken !== undefined ? { enrolToken } : {}), ...reg }))
      if (!started.success) throw new ProtocolError('unexpected answer from /v1/tpm/register')
      const cred = fromB64(started.data.credential)
      if (!cred) throw new ProtocolError('credential from /v1/tpm/register is not base64')
      const secret = await collector.activateCredential(cred)
      const done = ActivateAnswer.safeParse(
        await post('/v1/tpm/activate', { activationId: started.data.activationId, secret: b64(secret) }),
      )
      if (!done.success) throw new ProtocolError('unexpected answer from /v1/tpm/activate')
      return done.data
    },
  }
  return collector
}
