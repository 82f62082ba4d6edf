// /metrics under `keyward serve --workers N`. The workers share one port, so a scrape reaches
// whichever worker accepted its connection; each answering from its own registry alone would
// make every counter jump between scrapes and show 1/N of the traffic. The worker that answers
// asks the primary, which collects every worker's registry over IPC (prom-client's
// AggregatorRegistry) and merges them: counters and histograms summed, gauges by the aggregator
// each declares.
import cluster, { type Worker } from 'node:cluster'
import { AggregatorRegistry, type Registry } from 'prom-client'

interface ExpositionRequest {
  keyward: 'metrics-request'
  id: number
}
interface ExpositionAnswer {
  keyward: 'metrics-answer'
  id: number
  text?: string
  error?: string
}

/** Whether an IPC message is one of these (other messages share the channel: prom-client's, 'listening'). */
const isMessage =
  <T extends ExpositionRequest | ExpositionAnswer>(kind: T['keyward']) =>
  (m: unknown): m is T =>
    typeof m === 'object' && m !== null && (m as { keyward?: unknown }).keyward === kind && typeof (m as { id?: unknown }).id === 'number'
const isRequest = isMessage<ExpositionRequest>('metrics-request')
const isAnswer = isMessage<ExpositionAnswer>('metrics-answer')

/** In the primary: answers each worker's request with the exposition of every worker's metrics. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry()
  cluster.on('message', (worker: Worker, msg: unknown) => {
    if (!isRequest(msg)) return
    const answer = (a: Omit<ExpositionAnswer, 'keyward' | 'id'>): void => {
      if (worker.isConnected()) worker.send({ keyward: 'metrics-answer', id: msg.id, ...a } satisfies ExpositionAnswer)
    }
    aggregator.clusterMetrics().then(
      (text) => answer({ text }),
      (e: unknown) => answer({ error: e instanceof Error ? e.message : String(e) }),
    )
  })
}

/**
 * In a worker: offers `registry` to the primary's collections and returns how to read the
 * exposition of every worker's metrics (an error when the primary cannot collect them).
 */
export function clusterExposition(registry: Registry): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry])
  // Constructing one installs the worker's side: it answers the primary's collection requests.
  void new AggregatorRegistry()
  let nextId = 0
  const pending = new Map<number, { resolve: (text: string) => void; reject: (e: Error) => void }>()
  process.on('message', (msg: unknown) => {
    if (!isAnswer(msg)) return
    const p = pending.get(msg.id)
    if (!p) return
    pending.delete(msg.id)
    if (msg.error !== undefined) p.reject(new Error(`collecting the workers' metrics failed: ${msg.error}`))
    else p.resolve(msg.text ?? '')
  })
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = nextId++
      pending.set(id, { resolve, reject })
      process.send!({ keyward: 'metrics-request', id } satisfies ExpositionRequest, undefined, undefined, (e: Error | null) => {
        if (!e) return
        pending.delete(id)
        reject(e)
      })
    })
}
