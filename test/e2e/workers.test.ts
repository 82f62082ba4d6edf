// `keyward serve --workers 2`: the workers share one port, so a scrape of /metrics reaches one of
// them. It must count what every worker did (the primary merges their registries over IPC), not
// what the worker that took the scrape's connection did alone.
import { describe, it, expect } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.js'

/** GET on a connection of its own (no keep-alive), so the primary hands each to the next worker. */
function getOnNewConnection(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

const healthzCount = (exposition: string): number | undefined => {
  const m = /^keyward_http_request_duration_seconds_count\{[^}]*route="\/healthz"[^}]*status="200"[^}]*\} (\d+)$/m.exec(exposition)
  return m ? Number(m[1]) : undefined
}

/** `keyward serve` on SQLite in a temp dir with `workers` from its config file (not the suite's KEYWARD_WORKERS), for `run`. */
async function withBroker(workers: string, run: (b: BrokerProcess) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keyward-workers-'))
  try {
    const config = join(dir, 'keyward.yaml')
    await writeFile(config, `host: 127.0.0.1\nport: 0\nworkers: ${workers}\ndataDir: ${join(dir, 'data')}\nlogLevel: warn\n`)
    // Ready only once every worker listens (the primary reports then), so all take connections.
    const b = await startBrokerProcess(config, { KEYWARD_WORKERS: '' })
    try {
      await run(b)
    } finally {
      await b.stop()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

describe('keyward serve --workers 2', () => {
  it('one scrape of /metrics counts the requests every worker answered', () =>
    withBroker('2', async (b) => {
      const sent = 20
      for (let i = 0; i < sent; i++) expect((await getOnNewConnection(b.port, '/healthz')).status).toBe(200)
      for (let scrape = 0; scrape < 4; scrape++) {
        const r = await getOnNewConnection(b.port, '/metrics')
        expect(r.status).toBe(200)
        expect(healthzCount(r.body)).toBe(sent)
        expect(r.body.match(/^keyward_process_start_time_seconds /gm)).toBeNull() // per process: omitted when merged
      }
    }), 120_000)

  it('workers: auto on SQLite serves from one process (no change notification between processes sharing the file)', () =>
    withBroker('auto', async (b) => {
      const r = await getOnNewConnection(b.port, '/metrics')
      expect(r.status).toBe(200)
      // A single process answers from its own registry, per-process gauges included.
      expect(r.body).toMatch(/^keyward_process_start_time_seconds /m)
    }), 120_000)
})
