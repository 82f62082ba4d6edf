// A Map used as a bounded cache: at the bound, the oldest entry is dropped before a new one goes in.

/** Sets m[k] = v, first dropping the oldest entry when m holds `max`; returns v. */
export function remember<K, V>(m: Map<K, V>, k: K, v: V, max: number): V {
  if (m.size >= max) m.delete(m.keys().next().value as K)
  m.set(k, v)
  return v
}
