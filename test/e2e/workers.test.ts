// `keyward serve --workers 2`: the workers share one port, so a scrape of /metrics reaches one of
// them. It must count what every worker did (the primary merges their registries over IPC), not
// what the worker that took the scrape's connection did alone.
import { describe, it, expect } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBrokerProcess } from '../helpers/broker-process.js'

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

describe('keyward serve --workers 2', () => {
  it('one scrape of /metrics counts the requests every worker answered', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keyward-workers-'))
    const config = join(dir, 'keyward.yaml')
    await writeFile(config, `host: 127.0.0.1\nport: 0\nworkers: 2\ndataDir: ${join(dir, 'data')}\nlogLevel: warn\n`)
    // Ready only once both workers listen (the primary reports then), so both take connections.
    const b = await startBrokerProcess(config, { KEYWARD_WORKERS: '' }) // the config file's workers, not the suite's
    try {
      const sent = 20
      for (let i = 0; i < sent; i++) expect((await getOnNewConnection(b.port, '/healthz')).status).toBe(200)
      for (let scrape = 0; scrape < 4; scrape++) {
        const r = await getOnNewConnection(b.port, '/metrics')
        expect(r.status).toBe(200)
        expect(healthzCount(r.body)).toBe(sent)
        expect(r.body.match(/^keyward_process_start_time_seconds /gm)).toBeNull() // per process: omitted when merged
      }
    } finally {
      await b.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }, 120_000)

  it('workers: auto on SQLite serves from one process (no change notification between processes sharing the file)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keyward-workers-'))
    const config = join(dir, 'keyward.yaml')
    await writeFile(config, `host: 127.0.0.1\nport: 0\nworkers: auto\ndataDir: ${join(dir, 'data')}\nlogLevel: warn\n`)
    const b = await startBrokerProcess(config, { KEYWARD_WORKERS: '' }) // the config file's workers, not the suite's
    try {
      const r = await getOnNewConnection(b.port, '/metrics')
      expect(r.status).toBe(200)
      // A single process answers from its own registry, per-process gauges included.
      expect(r.body).toMatch(/^keyward_process_start_time_seconds /m)
    } finally {
      await b.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
