/** @jsxImportSource hono/jsx */
// The dashboard's pages: server-rendered hono JSX, which escapes every value it prints (workload
// names, failure messages, expressions are data from evidence and policies). No scripts, no inline
// styles; the only forms are POSTs carrying the session's CSRF token.
import type { Child } from 'hono/jsx'
import { html } from 'hono/html'
import type { WorkloadView } from '../admin-services.js'
import type { Denial, Overview, Releases, WindowName } from '../dashboard-data.js'
import { WINDOWS } from '../dashboard-data.js'
import type { AkRow } from '../../store/types.js'
import type { JsonValue } from '../../protocol/claims.js'
import { ReleaseChart } from './ui-chart.js'

export interface PageSession {
  credentialId: string
  csrf: string
}

const NAV = [
  ['/ui', 'Overview'],
  ['/ui/workloads', 'Workloads'],
  ['/ui/pending', 'Pending'],
  ['/ui/denials', 'Denials'],
  ['/ui/releases', 'Releases'],
  ['/ui/baselines', 'Baselines'],
] as const

const iso = (s: string | null): string => (s === null ? '—' : s.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))
const json = (v: JsonValue | undefined): string => (typeof v === 'string' ? v : JSON.stringify(v ?? null))

export function Layout(props: { title: string; path: string; session?: PageSession; children?: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · keyward`}</title>
        <link rel="stylesheet" href="/ui/static/ui.css" />
      </head>
      <body>
        <header>
          <span class="brand">keyward</span>
          {props.session && (
            <nav>
              {NAV.map(([href, label]) => (
                <a href={href} class={props.path === href ? 'current' : ''}>
                  {label}
                </a>
              ))}
            </nav>
          )}
          {props.session && (
            <form method="post" action="/ui/logout" class="logout">
              <input type="hidden" name="csrf" value={props.session.csrf} />
              <span>{props.session.credentialId}</span>
              <button type="submit">Log out</button>
            </form>
          )}
        </header>
        <main>
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  )
}

export function LoginPage(props: { error?: string }) {
  return (
    <Layout title="Log in" path="/ui/login">
      <form method="post" action="/ui/login" class="login">
        {props.error && <p class="error">{props.error}</p>}
        <p class="muted">Paste an admin credential (keyward credential create admin NAME). It is exchanged for a session cookie and not kept by the browser.</p>
        <label for="credential">Admin credential</label>
        <input id="credential" name="credential" type="password" autocomplete="off" required />
        <button type="submit">Log in</button>
      </form>
    </Layout>
  )
}

export function ErrorPage(props: { code: string; message: string; session?: PageSession }) {
  return (
    <Layout title="Request refused" path="" {...(props.session ? { session: props.session } : {})}>
      <p class="error">
        <code>{props.code}</code> {props.message}
      </p>
    </Layout>
  )
}

export function DriftBadge(props: { w: WorkloadView }) {
  const w = props.w
  if (!w.drifted) return <span class="badge ok">in line</span>
  return <span class="badge drift">{w.baseline ? `drifted since ${iso(w.divergedAt)}` : `denied since ${iso(w.divergedAt)} (never allowed)`}</span>
}

function Decision(props: { d: string }) {
  return <span class={`badge ${props.d}`}>{props.d}</span>
}

/** A table with one header row; one row per item, drawn by `row`. With `empty`, no rows show that note instead. */
function Table<T>(props: { head: readonly string[]; rows: readonly T[]; row: (item: T) => Child; empty?: string }) {
  if (props.empty !== undefined && props.rows.length === 0) return <p class="muted">{props.empty}</p>
  return (
    <table>
      <thead>
        <tr>
          {props.head.map((h) => (
            <th>{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>{props.rows.map(props.row)}</tbody>
    </table>
  )
}

function Failures(props: { failures: Denial['failures'] }) {
  if (props.failures.length === 0) return null
  return (
    <ul class="failures">
      {props.failures.map((f) => (
        <li>
          <strong>{f.condition}</strong>
          {'policy' in f && typeof f.policy === 'string' ? <span class="muted">{` (${f.policy})`}</span> : null}: {f.message}
          <br />
          <code>{f.subexpr ?? f.expr}</code>
          <br />
          expected <code>{json(f.expected)}</code>, actual <code>{json(f.actual)}</code>
        </li>
      ))}
    </ul>
  )
}

export function OverviewPage(props: { o: Overview; session: PageSession }) {
  const c = props.o.counts
  const card = (label: string, n: number, bad = false) => (
    <div class={bad && n > 0 ? 'card bad' : 'card'}>
      <dt>{label}</dt>
      <dd>{String(n)}</dd>
    </div>
  )
  return (
    <Layout title="Overview" path="/ui" session={props.session}>
      <dl class="cards">
        {card('Workloads', c.workloads)}
        {card('Drifted', c.drifted, true)}
        {card('In line', c.inLine)}
        {card('Enrolments awaiting approval', c.pendingEnrolments, true)}
        {card('Stored challenges', c.storedChallenges)}
        {card('Denials (24 h)', c.denials24h, true)}
        {card('Releases (24 h)', c.releases24h)}
      </dl>
      <h2>Workloads, drifted first</h2>
      <WorkloadTable ws={props.o.workloads} />
    </Layout>
  )
}

function WorkloadTable(props: { ws: WorkloadView[] }) {
  return (
    <Table
      head={['Workload', 'TEE', 'Policy', 'Last attestation', 'Decision', 'State']}
      rows={props.ws}
      empty="No workload has attested yet."
      row={(w) => (
        <tr class={w.drifted ? 'drifted' : ''}>
          <td>
            <code>{w.id}</code>
          </td>
          <td>{w.tee}</td>
          <td>{w.policy ?? '—'}</td>
          <td>{iso(w.lastAttestedAt)}</td>
          <td>
            <Decision d={w.lastDecision} />
          </td>
          <td>
            <DriftBadge w={w} />
          </td>
        </tr>
      )}
    />
  )
}

export function WorkloadsPage(props: { ws: WorkloadView[]; session: PageSession }) {
  return (
    <Layout title="Workloads" path="/ui/workloads" session={props.session}>
      {props.ws.length === 0 && <p class="muted">No workload has attested yet.</p>}
      {props.ws.map((w) => (
        <article class={w.drifted ? 'drifted' : ''}>
          <h2>
            <code>{w.id}</code> <DriftBadge w={w} />
          </h2>
          <dl class="facts">
            <dt>TEE</dt>
            <dd>{w.tee}</dd>
            <dt>Policy</dt>
            <dd>{w.policy ?? '—'}</dd>
            <dt>Last attestation</dt>
            <dd>{iso(w.lastAttestedAt)}</dd>
            <dt>Decision</dt>
            <dd>
              <Decision d={w.lastDecision} />
            </dd>
            <dt>Diverged at</dt>
            <dd>{iso(w.divergedAt)}</dd>
            <dt>Last allowed</dt>
            <dd>{w.baseline ? iso(w.baseline.at) : 'never'}</dd>
          </dl>
          <Table
            head={['Measured item', 'Actual (last attestation)', 'When last allowed', 'Declared in reference sets', 'State']}
            rows={w.items}
            row={(i) => (
              <tr class={i.changed ? 'drifted' : ''}>
                <td>{i.item}</td>
                <td>
                  <code>{i.actual ?? '—'}</code>
                </td>
                <td>
                  <code>{i.baseline ?? '—'}</code>
                </td>
                <td>{i.declaredIn.length ? i.declaredIn.join(', ') : <span class="muted">none</span>}</td>
                <td>{w.baseline === null ? <span class="badge none">no baseline</span> : i.changed ? <span class="badge changed">changed</span> : <span class="badge same">same</span>}</td>
              </tr>
            )}
          />
          {w.failures.length > 0 && <h2>Failing conditions of the last attestation</h2>}
          <Failures failures={w.failures} />
        </article>
      ))}
    </Layout>
  )
}

export function PendingPage(props: { p: { storedChallenges: number; pendingActivations: number; enrolments: AkRow[] }; session: PageSession }) {
  const { p, session } = props
  return (
    <Layout title="Pending" path="/ui/pending" session={session}>
      <dl class="cards">
        <div class="card">
          <dt>Stored challenges (nonces issued, not yet pruned)</dt>
          <dd>{String(p.storedChallenges)}</dd>
        </div>
        <div class="card">
          <dt>TPM credential activations</dt>
          <dd>{String(p.pendingActivations)}</dd>
        </div>
      </dl>
      <h2>Enrolments awaiting approval</h2>
      <Table
        head={['AK name', 'Asks for workload', 'EK', 'Registered', 'Decision']}
        rows={p.enrolments}
        empty="None."
        row={(a) => (
          <tr>
            <td>
              <code>{a.name}</code>
            </td>
            <td>{a.workload}</td>
            <td>
              <code>{a.ekFingerprint ?? a.ekPubDigest ?? '—'}</code>
            </td>
            <td>{iso(new Date(a.createdAt).toISOString())}</td>
            <td>
              {(['approve', 'reject'] as const).map((d) => (
                <form method="post" action={`/ui/enrolments/${a.name}/${d}`} class="inline">
                  <input type="hidden" name="csrf" value={session.csrf} />
                  <button type="submit" class={d}>
                    {d === 'approve' ? 'Approve' : 'Reject'}
                  </button>{' '}
                </form>
              ))}
            </td>
          </tr>
        )}
      />
    </Layout>
  )
}

function WindowLinks(props: { path: string; current: WindowName }) {
  return (
    <p class="windows">
      Window:{' '}
      {(Object.keys(WINDOWS) as WindowName[]).map((w) => (
        <a href={`${props.path}?window=${w}`} class={w === props.current ? 'current' : ''}>
          {w}
        </a>
      ))}
    </p>
  )
}

export function DenialsPage(props: { denials: Denial[]; window: WindowName; session: PageSession }) {
  return (
    <Layout title="Denials" path="/ui/denials" session={props.session}>
      <WindowLinks path="/ui/denials" current={props.window} />
      <Table
        head={['When', 'What', 'Workload / key', 'Reason and every failing condition']}
        rows={props.denials}
        empty="No denials in this window."
        row={(d) => (
          <tr>
            <td>{iso(d.at)}</td>
            <td>{d.type}</td>
            <td>
              <code>{d.workload ?? d.subject}</code>
            </td>
            <td>
              <code>{d.code}</code> {d.message}
              <Failures failures={d.failures} />
            </td>
          </tr>
        )}
      />
    </Layout>
  )
}

export function ReleasesPage(props: { r: Releases; session: PageSession }) {
  const { r } = props
  return (
    <Layout title="Releases" path="/ui/releases" session={props.session}>
      <WindowLinks path="/ui/releases" current={r.window} />
      {r.truncated && <p class="error">This window holds more audit rows than one page reads; the oldest are not counted.</p>}
      <ReleaseChart title="Secret releases per secret" series={r.perSecret} r={r} />
      <ReleaseChart title="Releases per workload (secrets, Vault tokens, tool credentials)" series={r.perWorkload} r={r} />
    </Layout>
  )
}

export function BaselinesPage(props: { ws: WorkloadView[]; session: PageSession }) {
  return (
    <Layout title="Baselines" path="/ui/baselines" session={props.session}>
      <p class="muted">What each workload measured when it was last allowed, against its last attestation.</p>
      {props.ws.map((w) => (
        <article class={w.drifted ? 'drifted' : ''}>
          <h2>
            <code>{w.id}</code> <DriftBadge w={w} />
          </h2>
          {w.baseline === null ? (
            <p class="muted">Never allowed: no baseline.</p>
          ) : (
            <>
              <dl class="facts">
                <dt>Last allowed</dt>
                <dd>{iso(w.baseline.at)}</dd>
                <dt>Under policy</dt>
                <dd>{w.baseline.policy ?? '—'}</dd>
              </dl>
              <Table
                head={['Measured item', 'Baseline (last allowed)', 'Now']}
                rows={w.items}
                row={(i) => (
                  <tr class={i.changed ? 'drifted' : ''}>
                    <td>{i.item}</td>
                    <td>
                      <code>{i.baseline ?? '—'}</code>
                    </td>
                    <td>
                      <code>{i.actual ?? '—'}</code> {i.changed && <span class="badge changed">changed</span>}
                    </td>
                  </tr>
                )}
              />
            </>
          )}
        </article>
      ))}
    </Layout>
  )
}

/** A whole HTML document around a page. */
export const htmlDocument = (page: Child) => html`<!doctype html>${page}`
