// OpenTelemetry spans of the attest and release paths (src/broker/tracing.ts), recorded by an
// in-memory exporter: attest with its verify and appraise children, releases with their kind and
// decision code, and nothing secret among the attributes. Tracing is off unless configured.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { trace } from '@opentelemetry/api'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { startHarness, testOnlyNitroCollector, type Harness } from './harness.js'
import { createClient } from '../../enclave-client/src/index.js'
import { loadConfig } from '../../src/broker/config.js'
import { errorCodeOf } from '../helpers/errors.js'

const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
let h: Harness
beforeAll(async () => {
  provider.register()
  h = await startHarness('sqlite')
})
afterAll(async () => {
  await h?.stop()
  await provider.shutdown()
  trace.disable()
})

describe('tracing', () => {
  it('is off by default and turned on by tracing: otlp (KEYWARD_TRACING)', () => {
    expect(loadConfig({}).tracing).toBe('off')
    expect(loadConfig({ env: { KEYWARD_TRACING: 'otlp' } }).tracing).toBe('otlp')
  })

  it('records attest (with verify and appraise inside it) and releases with their decisions, and no secret', async () => {
    exporter.reset()
    const client = createClient({ broker: h.url, collector: testOnlyNitroCollector(h.pki), retries: 0 })
    expect(new TextDecoder().decode(await client.getSecret('db-password'))).toBe('testOnly-db-password-9f2c')
    expect(await errorCodeOf(client.getSecret('not-granted'))).toBe('ERR_NOT_GRANTED')
    await client.close()

    const spans = exporter.getFinishedSpans()
    const attest = spans.find((s) => s.name === 'keyward.attest')!
    expect(attest.attributes).toMatchObject({ 'keyward.tee': 'nitro', 'keyward.via': 'attest', 'keyward.decision': 'allow' })
    for (const child of ['keyward.verify', 'keyward.appraise']) {
      const s = spans.find((x) => x.name === child)!
      expect(s.parentSpanContext?.spanId).toBe(attest.spanContext().spanId)
      expect(s.spanContext().traceId).toBe(attest.spanContext().traceId)
    }
    const releases = spans.filter((s) => s.name === 'keyward.release').map((s) => s.attributes)
    expect(releases).toEqual([
      { 'keyward.release.kind': 'secret', 'keyward.release.name': 'db-password', 'keyward.decision': 'allow' },
      { 'keyward.release.kind': 'secret', 'keyward.release.name': 'not-granted', 'keyward.decision': 'ERR_NOT_GRANTED' },
    ])
    expect(spans.find((s) => s.attributes['keyward.decision'] === 'ERR_NOT_GRANTED')?.status.code).toBe(2) // SpanStatusCode.ERROR
    expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain('testOnly-db-password')
  })
})
