// Wires a broker from configuration and runs it: store, KEK and sealer, token keys, verifiers,
// policy, Vault, HTTP(S) server, and worker processes that share the store.
import cluster from 'node:cluster'
import { readFileSync, mkdirSync } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import { serve, type ServerType } from '@hono/node-server'
import type { Logger } from 'pino'
import type { BrokerConfig } from './config.js'
import type { BrokerDeps, VaultServices } from './deps.js'
import { KeywardError } from '../errors.js'
import { freeConnectionSlots, openStore } from '../store/index.js'
import { openLocalKeyring } from '../sealing/keyring.js'
import { createSealer } from '../sealing/sealer.js'
import { createTransitKek } from '../sealing/kek-vault-transit.js'
import { createTokenIssuer } from './tokens.js'
import { createAppraiser } from './appraiser.js'
import { createMetrics } from './metrics.js'
import { clusterExposition, serveClusterMetrics } from './cluster-metrics.js'
import { chooseWorkers, hostBudget, type WorkerBudget } from './workers.js'
import { startTracing } from './tracing.js'
import { createApp } from './app.js'
import { defaultVerifiers } from '../verifiers/index.js'
import { parsePemBundle, type CertInfo } from '../verifiers/common/x509.js'
import type { KekProvider } from '../sealing/kek.js'
import { openChangeFeed } from '../store/changes.js'
import { runJobsOnce, subscribeCaches } from './replication.js'
import { checkPublicOrigin } from './dpop.js'
import { createSpiffeAuthority } from '../spiffe/authority.js'
import { alertForAudit, emitAlert } from './alerts.js'

export async function buildDeps(config: BrokerConfig, logger: Logger, opts: { clock?: () => Date; defaultMetrics?: boolean; env?: Readonly<Record<string, string | undefined>> } = {}): Promise<BrokerDeps> {
  const clock = opts.clock ?? (() => new Date())
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
  const store = await openStore({ dataDir: config.dataDir, ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}) })
  try {
    // node-vault and its HTTP stack load only when a Vault is configured (a third of a cold start).
    const vaultModule = config.vault ? await import('./vault.js') : undefined
    const vault = vaultModule ? await vaultModule.createVaultServices(config, store, logger, clock) : undefined
    let kek: KekProvider
    if (config.kek.provider === 'vault-transit') {
      if (!vault) throw new KeywardError('ERR_CONFIG', 'kek.provider vault-transit needs a vault section')
      kek = createTransitKek(vault.client, config.kek.key)
    } else {
      kek = await openLocalKeyring(config.dataDir)
    }
    const sealer = createSealer(kek)
    const audit: BrokerDeps['audit'] = async (entry) => {
      await store.appendAudit(entry, clock().getTime())
      const alert = alertForAudit(entry)
      if (alert) await emitAlert({ config, store, clock }, alert)
    }
    const tokens = await createTokenIssuer({ store, sealer, issuer: config.issuer, audience: config.audience, ttlSeconds: config.tokenTtlSeconds, maxTtlSeconds: config.tokenTtlSeconds * 12, clock })
    const metrics = createMetrics({ defaults: opts.defaultMetrics ?? false })
    metrics.setDriftSource(async () => (await store.listWorkloads()).filter((w) => w.divergedAt !== null).length)
    const ekCas = config.tpm.ekCaFiles.flatMap((f) => parsePemBundle(readFileSync(f, 'utf8'), f))
    const selfSigned = (c: CertInfo) => c.cert.subject === c.cert.issuer && c.cert.checkIssued(c.cert)
    return {
      config,
      store,
      kek,
      sealer,
      tokens,
      verifiers: defaultVerifiers({ snpCertCacheDir: config.snp.certCacheDir }),
      appraiser: createAppraiser(store),
      logger,
      metrics,
      clock,
      trust: { ekRoots: ekCas.filter(selfSigned), ekIntermediates: ekCas.filter((c) => !selfSigned(c)) },
      ...(vault && vaultModule ? { vault: vaultModule.instrumentVault(vault.services, metrics) satisfies VaultServices } : {}),
      ...(config.spiffe ? { spiffe: createSpiffeAuthority({ store, sealer, clock, ...config.spiffe }) } : {}),
      audit,
      ...(opts.env ? { env: opts.env } : {}),
    }
  } catch (e) {
    await store.close()
    throw e
  }
}

export interface RunningServer {
  port: number
  /**
   * Stops accepting connections, lets requests in flight finish (closing idle keep-alive
   * connections at once), and after `drainMs` (default DRAIN_MS) cuts whatever is left.
   */
  close(opts?: { drainMs?: number }): Promise<void>
}

/** How long a shutdown waits for requests in flight. */
export const DRAIN_MS = 10_000

/** How often each process tries the periodic jobs (one process per deployment owns each). */
const JOB_INTERVAL_MS = 60_000

/** Serves the app; returns once listening. */
export async function startServer(deps: BrokerDeps): Promise<RunningServer> {
  const { config } = deps
  checkPublicOrigin(config)
  const app = createApp(deps)
  return new Promise((resolve, reject) => {
    // eslint-disable-next-line prefer-const -- assigned once below; onListen closes over it first
    let server: ServerType
    const onListen = (info: { port: number }) => {
      deps.logger.info({ port: info.port, host: config.host, store: deps.store.kind, tls: Boolean(config.tls) }, 'keyward listening')
      resolve({
        port: info.port,
        close: ({ drainMs = DRAIN_MS } = {}) =>
          new Promise<void>((res) => {
            const http = server as unknown as { closeAllConnections?: () => void; closeIdleConnections?: () => void }
            // Keep-alive sockets must not hold a shutdown hostage: idle ones go now, and a
            // request still running after drainMs is cut.
            const cut = setTimeout(() => http.closeAllConnections?.(), drainMs)
            cut.unref()
            server.close(() => {
              clearTimeout(cut)
              res()
            })
            http.closeIdleConnections?.()
          }),
      })
    }
    const tls = config.tls
    server = serve(
      {
        fetch: app.fetch,
        port: config.port,
        hostname: config.host,
        ...(tls
          ? {
              createServer: createHttpsServer,
              serverOptions: {
                cert: readFileSync(tls.cert),
                key: readFileSync(tls.key),
                ...(tls.clientCa ? { ca: readFileSync(tls.clientCa), requestCert: true, rejectUnauthorized: false } : {}),
              },
            }
          : {}),
      },
      onListen,
    )
    server.on('error', reject)
  })
}

/** `config.workers`, with `auto` resolved against this host and the store (src/broker/workers.ts), and logged. */
async function workerCount(config: BrokerConfig, logger: Logger): Promise<number> {
  if (config.workers !== 'auto') return config.workers
  const budget: WorkerBudget = config.databaseUrl
    ? { store: 'postgres', ...hostBudget(), freeConnections: await freeConnectionSlots(config.databaseUrl).catch((e: unknown) => {
        throw new KeywardError('ERR_STORE_UNAVAILABLE', 'workers: auto could not read the database\'s free connections', { cause: e })
      }) }
    : { store: 'sqlite', ...hostBudget() }
  const choice = chooseWorkers(budget)
  logger.info({ ...choice, budget }, 'workers: auto')
  return choice.workers
}

/**
 * `keyward serve`: one process, or a primary that forks `workers` processes sharing the port and the store.
 * `prepareDeps` lets an embedding entry point (bench/e2e-serve.mjs: benchmark-only trust roots) adjust
 * each serving process's deps; `keyward serve` passes none.
 */
export async function runServe(config: BrokerConfig, logger: Logger, opts: { prepareDeps?: (deps: BrokerDeps) => void; env?: Readonly<Record<string, string | undefined>> } = {}): Promise<void> {
  checkPublicOrigin(config)
  const workers = cluster.isPrimary ? await workerCount(config, logger) : 1
  if (workers > 1) {
    // Initialise the store (migrations, signing key, keyring) once before workers race for it.
    const deps = await buildDeps(config, logger)
    await deps.store.close()
    serveClusterMetrics()
    // Ready once every worker listens (a supervisor or test harness waiting on IPC sees one signal).
    const listening = new Set<number>()
    cluster.on('listening', (w, address) => {
      listening.add(w.id)
      if (listening.size === workers) process.send?.({ keyward: 'listening', port: address.port, workers })
    })
    for (let i = 0; i < workers; i++) cluster.fork()
    cluster.on('exit', (w, code, signal) => {
      logger.warn({ worker: w.process.pid, code, signal }, 'worker exited')
      if (!shuttingDown) cluster.fork()
    })
    let shuttingDown = false
    const stop = () => {
      shuttingDown = true
      for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM')
    }
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
    return
  }
  const stopTracing = config.tracing === 'otlp' ? await startTracing() : async () => {}
  const deps = await buildDeps(config, logger, { defaultMetrics: true, ...(opts.env ? { env: opts.env } : {}) })
  opts.prepareDeps?.(deps)
  if (cluster.isWorker) deps.metrics.setExposition(clusterExposition(deps.metrics.registry))
  const feed = await openChangeFeed(config.databaseUrl, { onError: (e) => logger.warn({ err: String(e) }, 'change feed connection lost; caches dropped, reconnecting') }).catch(async (e: unknown) => {
    await deps.store.close()
    throw e
  })
  const unsubscribe = subscribeCaches(deps, feed)
  const server = await startServer(deps)
  const jobs = setInterval(() => void runJobsOnce(deps, feed), JOB_INTERVAL_MS)
  jobs.unref()
  let stopping = false
  const shutdown = async () => {
    if (stopping) return
    stopping = true
    logger.info('shutting down: draining requests in flight')
    clearInterval(jobs)
    // Requests in flight finish against the store and their answers are sent; then the store closes.
    await server.close()
    unsubscribe()
    await feed.close()
    await deps.store.close()
    await stopTracing().catch((e: unknown) => logger.warn({ err: String(e) }, 'flushing traces failed'))
    process.exit(0)
  }
  process.once('SIGTERM', () => void shutdown())
  process.once('SIGINT', () => void shutdown())
  if (process.send) process.send({ keyward: 'listening', port: server.port })
}
