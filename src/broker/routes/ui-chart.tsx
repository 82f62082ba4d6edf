/** @jsxImportSource hono/jsx */
// Releases over time as inline SVG (no script, no external image): one row per series, one bar
// per time bucket, the total at the end of the row. Drawn from keyward's audit (dashboard-data).
import type { ReleaseSeries, Releases } from '../dashboard-data.js'

const W = 900
const LABEL_W = 230
const TOTAL_W = 60
const ROW_H = 30
const TOP = 6
const AXIS_H = 22

const stamp = (ms: number, span: number): string => new Date(ms).toISOString().slice(span > 86_400_000 ? 5 : 11, 16).replace('T', ' ')

export function ReleaseChart(props: { title: string; series: ReleaseSeries[]; r: Releases }) {
  const { series, r } = props
  if (series.length === 0) return <p class="muted">No releases in this window.</p>
  const barsW = W - LABEL_W - TOTAL_W
  const bw = barsW / r.buckets
  const max = Math.max(1, ...series.flatMap((s) => s.counts))
  const h = TOP + series.length * ROW_H + AXIS_H
  const span = r.bucketMs * r.buckets
  const axisY = TOP + series.length * ROW_H + 15
  return (
    <figure>
      <figcaption>{props.title}</figcaption>
      <svg xmlns="http://www.w3.org/2000/svg" width={W} height={h} viewBox={`0 0 ${W} ${h}`} role="img" aria-label={props.title}>
        {series.map((s, row) => {
          const y = TOP + row * ROW_H
          return (
            <g>
              <text x={LABEL_W - 8} y={y + ROW_H / 2 + 4} text-anchor="end">
                {s.name.length > 34 ? `${s.name.slice(0, 33)}…` : s.name}
              </text>
              <line class="grid" x1={LABEL_W} x2={LABEL_W + barsW} y1={y + ROW_H - 3} y2={y + ROW_H - 3} />
              {s.counts.map((n, i) => {
                if (n === 0) return null
                const bh = Math.max(2, ((ROW_H - 8) * n) / max)
                return (
                  <rect class="bar" x={LABEL_W + i * bw + 1} y={y + ROW_H - 3 - bh} width={Math.max(1, bw - 2)} height={bh}>
                    <title>{`${s.name}: ${n} release(s) from ${new Date(r.start + i * r.bucketMs).toISOString()}`}</title>
                  </rect>
                )
              })}
              <text x={W - TOTAL_W + 10} y={y + ROW_H / 2 + 4}>
                {String(s.total)}
              </text>
            </g>
          )
        })}
        <text class="axis" x={LABEL_W} y={axisY}>
          {stamp(r.start, span)}
        </text>
        <text class="axis" x={LABEL_W + barsW} y={axisY} text-anchor="end">
          {`${stamp(r.start + span, span)} UTC`}
        </text>
      </svg>
    </figure>
  )
}
