/**
 * Which comparisons an evaluation makes. Genuine: every pair of samples of one identity. Impostor: every pair of
 * samples of different identities (`all`), the first sample of each identity against the first of every other
 * (`fvc`, the FVC protocol), or a seeded random sample of the `all` pairs.
 */
import { mulberry32 } from '../common/prng.ts';

export type ImpostorMode = { kind: 'all' } | { kind: 'fvc' } | { kind: 'sample'; count: number; seed: number };

/** Pairs as two parallel index arrays. */
export interface Pairs {
  a: Uint32Array;
  b: Uint32Array;
}

export function genuinePairs(identities: readonly string[]): Pairs {
  const groups = groupBy(identities);
  const a: number[] = [];
  const b: number[] = [];
  for (const members of groups.values()) for (let i = 0; i < members.length; i++) for (let j = i + 1; j < members.length; j++) {
    a.push(members[i]!);
    b.push(members[j]!);
  }
  return { a: Uint32Array.from(a), b: Uint32Array.from(b) };
}

export function countImpostorPairs(identities: readonly string[]): number {
  const n = identities.length;
  let same = 0;
  for (const m of groupBy(identities).values()) same += (m.length * (m.length - 1)) / 2;
  return (n * (n - 1)) / 2 - same;
}

export function impostorPairs(identities: readonly string[], mode: ImpostorMode): Pairs {
  if (mode.kind === 'fvc') {
    const firsts = [...groupBy(identities).values()].map((m) => m[0]!);
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < firsts.length; i++) for (let j = i + 1; j < firsts.length; j++) {
      a.push(firsts[i]!);
      b.push(firsts[j]!);
    }
    return { a: Uint32Array.from(a), b: Uint32Array.from(b) };
  }
  const n = identities.length;
  if (mode.kind === 'all') {
    const total = countImpostorPairs(identities);
    const a = new Uint32Array(total);
    const b = new Uint32Array(total);
    let k = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (identities[i] !== identities[j]) {
      a[k] = i;
      b[k++] = j;
    }
    return { a, b };
  }
  // Seeded sample without replacement, drawn by rejection (the sample is small next to all pairs when used).
  const rand = mulberry32(mode.seed);
  const want = Math.min(mode.count, countImpostorPairs(identities));
  const seen = new Set<number>();
  const a = new Uint32Array(want);
  const b = new Uint32Array(want);
  let k = 0;
  while (k < want) {
    const i = Math.floor(rand() * n);
    const j = Math.floor(rand() * n);
    if (i === j || identities[i] === identities[j]) continue;
    const lo = Math.min(i, j);
    const hi = Math.max(i, j);
    const key = lo * n + hi;
    if (seen.has(key)) continue;
    seen.add(key);
    a[k] = lo;
    b[k++] = hi;
  }
  return { a, b };
}

function groupBy(identities: readonly string[]): Map<string, number[]> {
  const m = new Map<string, number[]>();
  identities.forEach((id, i) => {
    const g = m.get(id);
    if (g) g.push(i);
    else m.set(id, [i]);
  });
  return m;
}
