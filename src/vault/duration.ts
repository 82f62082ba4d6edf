// Vault duration values: an integer number of seconds or a Go-style duration string
// ("90s", "15m", "1h30m"), as accepted by the ttl/wrap_ttl/increment parameters
// (Vault API docs, "Duration strings"). Total: returns undefined for anything else.

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600 }

/** Seconds for a Vault duration, or undefined when it is not a valid, non-negative duration. */
export function parseVaultDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined
  if (/^\d{1,10}$/.test(v)) return Number(v)
  if (!/^(\d{1,10}[hms])+$/.test(v)) return undefined
  let total = 0
  for (const m of v.matchAll(/(\d{1,10})([hms])/g)) total += Number(m[1]) * (UNIT_SECONDS[m[2] as string] ?? 0)
  return Number.isSafeInteger(total) ? total : undefined
}
