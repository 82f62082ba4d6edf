// OpenTelemetry tracing of the attest and release paths, off by default. The spans are made with
// @opentelemetry/api, which does nothing until a tracer provider is registered: `tracing: otlp`
// (KEYWARD_TRACING=otlp) registers one that exports OTLP/HTTP to the endpoint the standard
// OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variables name. Attributes are
// what the audit already holds in the clear (TEE, route kind, secret name, decision code): never
// evidence, keys, tokens or secret values.
import { SpanStatusCode, trace, type Attributes } from '@opentelemetry/api'
import { isKeywardError } from '../errors.js'

const tracer = trace.getTracer('keyward')

/** Runs fn in an active span; an error sets the span's status and its keyward code, then propagates. */
export function inSpan<T>(name: string, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      const out = await fn()
      span.setAttribute('keyward.decision', 'allow')
      return out
    } catch (e) {
      const code = isKeywardError(e) ? e.code : 'ERR_INTERNAL'
      span.setAttribute('keyward.decision', code)
      span.setStatus({ code: SpanStatusCode.ERROR, message: code })
      throw e
    } finally {
      span.end()
    }
  })
}

/** Registers the OTLP/HTTP exporting tracer provider; resolves to a flush-and-stop for shutdown. */
export async function startTracing(serviceName = 'keyward'): Promise<() => Promise<void>> {
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ])
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  })
  provider.register()
  return () => provider.shutdown()
}
