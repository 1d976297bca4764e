/**
 * Minutiae detection on the skeleton by crossing number (one 0->1 transition around a pixel: a ridge ending; three:
 * a bifurcation), with each minutia's ridge(s) traced along the skeleton. The traces give the direction (see
 * types.ts for the convention) and the facts the spurious-minutiae rules need (what each trace ran into, how soon).
 */
import { NEIGHBOUR_DX, NEIGHBOUR_DY, neighbourCode, TRANSITIONS } from './thinning.ts';
import { axialDifference } from './orientation.ts';

export interface Trace {
  /** Why the walk stopped: it reached the length limit, another junction, or the free end of the ridge. */
  stop: 'length' | 'junction' | 'end';
  /** Pixel index where it stopped. */
  at: number;
  steps: number;
  /** Pixel index reached after the direction length (or the last one, when shorter). */
  directionPoint: number;
}

export interface Candidate {
  x: number;
  y: number;
  type: 'ending' | 'bifurcation';
  /** Unit direction in image coordinates (y down). */
  dx: number;
  dy: number;
  traces: Trace[];
  removed: boolean;
  quality: number;
}

export interface DetectOptions {
  width: number;
  height: number;
  /** Ridge period at a pixel, for the trace lengths. */
  periodAt: (x: number, y: number) => number;
  /** Per-pixel ridge-normal angle, for direction refinement. */
  normal: Float32Array;
  /** Maximum trace length and direction length, in periods. */
  tracePeriods: number;
  directionPeriods: number;
  /**
   * Distance to the background per pixel, and how close (in periods) a candidate may be before it is skipped
   * untraced: ridges cut by the mask end there, and the border rule would drop those endings anyway.
   */
  borderDistance?: Float32Array;
  skipWithinPeriods?: number;
}

export function detectMinutiae(skeleton: Uint8Array, opts: DetectOptions): Candidate[] {
  const { width, height } = opts;
  // Crossing numbers of every skeleton pixel (the traces stop at junctions), and the candidates in scan order.
  const cn = new Uint8Array(skeleton.length);
  const found: number[] = [];
  for (let y = 1; y < height - 1; y++) {
    const inner = y >= 2 && y < height - 2;
    for (let x = 1, i = y * width + 1; x < width - 1; x++, i++) {
      if (!skeleton[i]) continue;
      const c = TRANSITIONS[neighbourCode(skeleton, width, i)]!;
      cn[i] = c;
      if ((c === 1 || c === 3) && inner && x >= 2 && x < width - 2) found.push(i);
    }
  }
  const stamp = new Int32Array(skeleton.length);
  let generation = 0;
  const out: Candidate[] = [];
  for (const i of found) {
    const x = i % width;
    const y = (i - x) / width;
    const c = cn[i]!;
    const T = opts.periodAt(x, y);
    if (opts.borderDistance && opts.borderDistance[i]! < (opts.skipWithinPeriods ?? 0) * T) continue;
    const maxSteps = Math.ceil(opts.tracePeriods * T);
    const dirSteps = Math.max(3, Math.round(opts.directionPeriods * T));
    generation++;
    stamp[i] = generation;
    const starts = branchStarts(skeleton, width, i);
    for (const s of starts) stamp[s] = generation;
    const traces = starts.map((s) => trace(skeleton, cn, stamp, generation, width, s, maxSteps, dirSteps));
    const vectors = traces.map((t) => unit((t.directionPoint % width) - x, Math.floor(t.directionPoint / width) - y));
    let v: [number, number];
    if (c === 1) {
      v = vectors[0]!; // into the ridge body
    } else {
      if (vectors.length !== 3) continue;
      v = bisectClosestPair(vectors);
    }
    if (v[0] === 0 && v[1] === 0) continue;
    v = refine(v, opts.normal[i]!);
    out.push({ x, y, type: c === 1 ? 'ending' : 'bifurcation', dx: v[0], dy: v[1], traces, removed: false, quality: 0 });
  }
  return out;
}

/** One start pixel per run of set neighbours (4-neighbours preferred: they continue the line most directly). */
function branchStarts(img: Uint8Array, width: number, i: number): number[] {
  const code = neighbourCode(img, width, i);
  const starts: number[] = [];
  let first = 0;
  while (first < 8 && (code >> first) & 1) first++;
  if (first === 8) return starts;
  let run: number[] = [];
  for (let n = 1; n <= 8; n++) {
    const k = (first + n) % 8;
    if ((code >> k) & 1) run.push(k);
    else if (run.length) {
      const pick = run.find((r) => r % 2 === 0) ?? run[0]!;
      starts.push(i + NEIGHBOUR_DY[pick]! * width + NEIGHBOUR_DX[pick]!);
      run = [];
    }
  }
  return starts;
}

/** Neighbours tried when following a ridge: 4-neighbours first (they continue the line most directly). */
const TRACE_ORDER = Uint8Array.of(0, 2, 4, 6, 1, 3, 5, 7);

function trace(img: Uint8Array, cn: Uint8Array, stamp: Int32Array, gen: number, width: number, start: number, maxSteps: number, dirSteps: number): Trace {
  let cur = start;
  let steps = 1;
  let directionPoint = start;
  for (;;) {
    if (steps <= dirSteps) directionPoint = cur;
    if (cn[cur]! >= 3) return { stop: 'junction', at: cur, steps, directionPoint };
    if (steps >= maxSteps) return { stop: 'length', at: cur, steps, directionPoint };
    let next = -1;
    for (let n = 0; n < 8; n++) {
      const k = TRACE_ORDER[n]!;
      const j = cur + NEIGHBOUR_DY[k]! * width + NEIGHBOUR_DX[k]!;
      if (img[j] && stamp[j] !== gen) {
        next = j;
        break;
      }
    }
    if (next < 0) return { stop: 'end', at: cur, steps, directionPoint };
    stamp[next] = gen;
    cur = next;
    steps++;
  }
}

const unit = (x: number, y: number): [number, number] => {
  const n = Math.hypot(x, y);
  return n > 0 ? [x / n, y / n] : [0, 0];
};

/** The bisector of the two branches that make the smallest angle: points into the gap between them. */
function bisectClosestPair(v: Array<[number, number]>): [number, number] {
  let best: [number, number] = [0, 0];
  let bestDot = -Infinity;
  for (let a = 0; a < 3; a++) {
    for (let b = a + 1; b < 3; b++) {
      const dot = v[a]![0] * v[b]![0] + v[a]![1] * v[b]![1];
      if (dot > bestDot) (bestDot = dot), (best = unit(v[a]![0] + v[b]![0], v[a]![1] + v[b]![1]));
    }
  }
  return best;
}

/** Snaps the traced direction onto the (smoother) orientation field's ridge line when they roughly agree. */
function refine(v: [number, number], normal: number): [number, number] {
  const ridge = normal + Math.PI / 2;
  const traced = Math.atan2(v[1], v[0]);
  if (axialDifference(traced, ridge) > (35 * Math.PI) / 180) return v;
  const r: [number, number] = [Math.cos(ridge), Math.sin(ridge)];
  return r[0] * v[0] + r[1] * v[1] >= 0 ? r : [-r[0], -r[1]];
}
