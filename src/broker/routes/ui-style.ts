// The dashboard's one stylesheet, served as a file at /ui/static/ui.css: the Content-Security-Policy
// (style-src 'self') refuses inline styles, so nothing is styled in the pages themselves.
export const UI_CSS = `
:root { --fg: #1d2330; --muted: #5b6478; --line: #d9dde6; --bg: #f6f7fa; --ok: #1f7a44; --bad: #b42318; --warn: #9a5b00; --accent: #2f5bd3; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 24px; padding: 10px 24px; background: #1d2330; color: #fff; }
header .brand { font-weight: 700; letter-spacing: .02em; }
header nav a { color: #cfd6e6; text-decoration: none; margin-right: 14px; }
header nav a.current, header nav a:hover { color: #fff; text-decoration: underline; }
header form.logout { margin-left: auto; display: flex; gap: 10px; align-items: center; color: #cfd6e6; }
main { padding: 16px 24px 40px; max-width: 1280px; }
h1 { font-size: 20px; margin: 4px 0 16px; }
h2 { font-size: 16px; margin: 22px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef0f5; font-weight: 600; }
code { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 0 0 18px; padding: 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; min-width: 150px; }
.card dt { color: var(--muted); font-size: 12px; }
.card dd { margin: 2px 0 0; font-size: 22px; font-weight: 700; }
.card.bad dd { color: var(--bad); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.badge.drift, .badge.deny, .badge.changed { background: #fde5e3; color: var(--bad); }
.badge.ok, .badge.allow, .badge.same { background: #ddf3e5; color: var(--ok); }
.badge.none { background: #eef0f5; color: var(--muted); }
tr.drifted td:first-child { border-left: 4px solid var(--bad); }
article { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 0 0 16px; }
article.drifted { border-left: 5px solid var(--bad); }
article h2 { margin-top: 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0 0 10px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
ul.failures { margin: 4px 0; padding-left: 18px; }
ul.failures li { margin: 0 0 6px; }
.muted { color: var(--muted); }
.error { background: #fde5e3; color: var(--bad); border: 1px solid #f4b8b2; padding: 8px 12px; border-radius: 4px; }
form.inline { display: inline; }
button { font: inherit; padding: 3px 12px; border-radius: 4px; border: 1px solid #9aa3b5; background: #fff; cursor: pointer; }
button.approve { border-color: var(--ok); color: var(--ok); }
button.reject { border-color: var(--bad); color: var(--bad); }
.login { max-width: 420px; margin: 60px auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 20px 24px; }
.login label { display: block; margin: 10px 0 4px; }
.login input { width: 100%; padding: 6px 8px; font: 13px ui-monospace, monospace; }
.login button { margin-top: 14px; }
.windows a { margin-right: 10px; }
.windows a.current { font-weight: 700; }
figure { margin: 0 0 20px; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px; }
figcaption { font-weight: 600; margin-bottom: 6px; }
svg .bar { fill: var(--accent); }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg text { font: 12px system-ui, sans-serif; fill: var(--fg); }
svg text.axis { fill: var(--muted); font-size: 11px; }
`
