#!/usr/bin/env node
// Summarizes a V8 .cpuprofile (node --cpu-prof): self time by function and by module, so a
// before/after comparison fits in an issue note. A .heapprofile (sampled allocations, as
// BENCH_HEAP_PROFILE_DIR writes) is summarized the same way, in bytes allocated instead of time.
// Usage: node scripts/cpuprofile-summary.mjs FILE [TOP] [INCLUSIVE_REGEX]
import { readFileSync } from 'node:fs'

const [file, topArg, inclusiveArg] = process.argv.slice(2)
if (!file) {
  console.error('usage: cpuprofile-summary.mjs FILE.cpuprofile [TOP]')
  process.exit(2)
}
const top = Number(topArg ?? 25) || 25
const raw = JSON.parse(readFileSync(file, 'utf8'))
const isHeap = raw.head !== undefined
const prof = isHeap ? flattenHeapProfile(raw) : raw
const byId = new Map(prof.nodes.map((n) => [n.id, n]))
const self = new Map()
if (isHeap) for (const s of raw.samples) self.set(s.nodeId, (self.get(s.nodeId) ?? 0) + s.size)
else for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0))
const total = [...self.values()].reduce((a, b) => a + b, 0)

/** A heap profile is a tree of call frames; the CPU profile's shape is a flat list with child ids. */
function flattenHeapProfile(heap) {
  const nodes = []
  const walk = (n) => {
    nodes.push({ id: n.id, callFrame: n.callFrame, children: n.children.map((c) => c.id) })
    for (const c of n.children) walk(c)
  }
  walk(heap.head)
  return { nodes }
}

function moduleOf(url) {
  if (!url) return '(native/idle)'
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) return url.slice(nm + 13).split('/').slice(0, url.slice(nm + 13).startsWith('@') ? 2 : 1).join('/')
  if (url.startsWith('node:')) return url
  const src = url.indexOf('/src/')
  return src >= 0 ? url.slice(src + 1) : url.split('/').slice(-2).join('/')
}
const fn = new Map()
const mod = new Map()
for (const [id, t] of self) {
  const n = byId.get(id)
  const cf = n.callFrame
  const name = `${cf.functionName || '(anonymous)'} ${moduleOf(cf.url)}${cf.url ? ':' + (cf.lineNumber + 1) : ''}`
  fn.set(name, (fn.get(name) ?? 0) + t)
  const m = cf.functionName === '(garbage collector)' ? '(gc)' : cf.functionName === '(idle)' ? '(idle)' : cf.functionName === '(program)' ? '(program)' : moduleOf(cf.url)
  mod.set(m, (mod.get(m) ?? 0) + t)
}
const pct = (t) => ((100 * t) / total).toFixed(1).padStart(5) + '%'
const unit = isHeap ? 'bytes allocated' : 'time'
console.log(isHeap ? `total ${(total / 2 ** 20).toFixed(0)} MB allocated (sampled)` : `total ${(total / 1000).toFixed(0)} ms sampled`)
console.log(`-- self ${unit} by module`)
for (const [k, t] of [...mod].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(pct(t), k)
console.log(`-- self ${unit} by function`)
for (const [k, t] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(pct(t), k)

if (inclusiveArg) {
  // Inclusive: a sample counts once for every named function on its (synchronous) stack.
  const re = new RegExp(inclusiveArg)
  const parent = new Map()
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const incl = new Map()
  for (const [id, t] of self) {
    const seen = new Set()
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur).callFrame
      const name = `${cf.functionName || '(anonymous)'} ${moduleOf(cf.url)}`
      if (re.test(name) && !seen.has(name)) {
        seen.add(name)
        incl.set(name, (incl.get(name) ?? 0) + t)
      }
    }
  }
  console.log(`-- inclusive ${unit} of /${inclusiveArg}/ (synchronous stacks only)`)
  for (const [k, t] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(pct(t), k)
}
