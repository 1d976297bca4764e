/**
 * Analytic "fingerprints" with known ground truth, for tests and benchmarks (no dependency on the synthetic
 * generator). Ridges follow the level lines of a phase field psi = 2*pi*r/period (circles around a centre, giving
 * arch- or loop-like arcs), and each minutia is a phase dislocation: adding s*atan2(y - y0, x - x0) inserts one ridge
 * line that starts near (x0, y0); its type is set by the phase at the point (see the nudging below).
 */
import { mulberry32 as mulberry } from '../../common/prng.ts';

export interface PatternMinutia {
  x: number;
  y: number;
  type: 'ending' | 'bifurcation';
}

export interface PatternOptions {
  width?: number;
  height?: number;
  period?: number;
  /** Centre of the concentric ridges (default: below the image's middle, giving arch-like arcs). */
  centre?: { x: number; y: number };
  minutiae?: PatternMinutia[];
  /** Gaussian noise deviation in gray levels, and its seed. */
  noise?: number;
  seed?: number;
  /** Ridge contrast (gray levels, peak to peak) and mean gray. */
  contrast?: number;
  mean?: number;
  /** Elliptic finger area: pixels outside are background (light). Default: inset ellipse. */
  ellipse?: { cx: number; cy: number; rx: number; ry: number } | null;
  /** Rotation of the whole pattern about the image centre, radians (counter-clockwise on screen). */
  rotation?: number;
}

export interface Pattern {
  width: number;
  height: number;
  data: Uint8Array;
  /** Ridge-normal angle per pixel (image coordinates, modulo pi), from the analytic phase gradient. */
  normal: Float32Array;
  /** 1 where the finger is. */
  foreground: Uint8Array;
  minutiae: PatternMinutia[];
  period: number;
}

export function makePattern(opts: PatternOptions = {}): Pattern {
  const width = opts.width ?? 256;
  const height = opts.height ?? 288;
  const T = opts.period ?? 9;
  const centre = opts.centre ?? { x: width / 2, y: height * 1.1 };
  const ms = opts.minutiae ?? [];
  const rnd = mulberry(opts.seed ?? 1);
  const contrast = opts.contrast ?? 180;
  const mean = opts.mean ?? 128;
  const ell = opts.ellipse === undefined ? { cx: width / 2, cy: height / 2, rx: width * 0.42, ry: height * 0.44 } : opts.ellipse;
  const rot = opts.rotation ?? 0;
  const cr = Math.cos(rot);
  const sr = Math.sin(rot);
  const data = new Uint8Array(width * height);
  const normal = new Float32Array(width * height);
  const foreground = new Uint8Array(width * height);
  // Signs alternate so the dislocations do not add up to a global phase wind.
  const sign = ms.map((_, i) => (i % 2 === 0 ? 1 : -1));
  const bgPhase = (x: number, y: number) => (2 * Math.PI * Math.hypot(x - centre.x, y - centre.y)) / T;
  // Near a dislocation psi ~ psi0 + s*theta: the ridge line leaves the point at theta = -psi0/s. It is the INSERTED
  // line (an ending) when that direction runs along the ridge towards the side with the extra ridge, and the valley
  // line is (a bifurcation) when it runs the other way. So each minutia is nudged across the ridges (at most half a
  // period) until psi0 puts the ridge line on the wanted side; the nudged point is the ground truth.
  const placed = ms.map((m) => ({ ...m }));
  for (let i = 0; i < placed.length; i++) {
    const m = placed[i]!;
    const others = (x: number, y: number) => {
      let psi = bgPhase(x, y);
      for (let j = 0; j < i; j++) psi += sign[j]! * Math.atan2(y - placed[j]!.y, x - placed[j]!.x);
      for (let j = i + 1; j < ms.length; j++) psi += sign[j]! * Math.atan2(y - ms[j]!.y, x - ms[j]!.x);
      return psi;
    };
    const g = Math.atan2(m.y - centre.y, m.x - centre.x); // phase gradient direction (radial)
    const tangent = g + (sign[i]! > 0 ? Math.PI / 2 : -Math.PI / 2);
    const want = m.type === 'ending' ? tangent + Math.PI : tangent;
    const psi0 = -sign[i]! * want;
    let best = 0;
    let bestErr = Infinity;
    for (let t = -T / 2; t <= T / 2; t += 0.05) {
      const d = others(m.x + t * Math.cos(g), m.y + t * Math.sin(g)) - psi0;
      const err = Math.abs(Math.atan2(Math.sin(d), Math.cos(d)));
      if (err < bestErr) (bestErr = err), (best = t);
    }
    m.x += best * Math.cos(g);
    m.y += best * Math.sin(g);
  }
  const psiAt = (x: number, y: number): number => {
    let psi = bgPhase(x, y);
    for (let i = 0; i < placed.length; i++) psi += sign[i]! * Math.atan2(y - placed[i]!.y, x - placed[i]!.x);
    return psi;
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // Rotate the sample point into the pattern's frame (on screen, y down: counter-clockwise is -rot in atan2 terms).
      const u = width / 2 + (x - width / 2) * cr - (y - height / 2) * sr;
      const v = height / 2 + (x - width / 2) * sr + (y - height / 2) * cr;
      const psi = psiAt(u, v);
      const ridge = Math.tanh(2 * Math.cos(psi));
      const i = y * width + x;
      const inside = !ell || ((x - ell.cx) / ell.rx) ** 2 + ((y - ell.cy) / ell.ry) ** 2 <= 1;
      foreground[i] = inside ? 1 : 0;
      const g = inside ? mean - (contrast / 2) * ridge : 235;
      data[i] = clampByte(g + (opts.noise ? opts.noise * gauss(rnd) : 0));
      const e = 0.01;
      const gx = psiAt(u + e, v) - psiAt(u - e, v);
      const gy = psiAt(u, v + e) - psiAt(u, v - e);
      // Gradient in the rotated frame back to image axes.
      normal[i] = Math.atan2(-gx * sr + gy * cr, gx * cr + gy * sr);
    }
  }
  const minutiae = placed.map((m) => {
    const dx = m.x - width / 2;
    const dy = m.y - height / 2;
    return { x: width / 2 + dx * cr + dy * sr, y: height / 2 - dx * sr + dy * cr, type: m.type };
  });
  return { width, height, data, normal, foreground, minutiae, period: T };
}

/** 3x3 box blur, `passes` times (a stand-in for optical blur). */
export function blur(p: { width: number; height: number; data: Uint8Array }, passes = 1): Uint8Array {
  let a = Uint8Array.from(p.data);
  for (let k = 0; k < passes; k++) {
    const b = new Uint8Array(a.length);
    for (let y = 0; y < p.height; y++) {
      for (let x = 0; x < p.width; x++) {
        let s = 0;
        let n = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const xx = x + dx;
            const yy = y + dy;
            if (xx < 0 || yy < 0 || xx >= p.width || yy >= p.height) continue;
            s += a[yy * p.width + xx]!;
            n++;
          }
        }
        b[y * p.width + x] = Math.round(s / n);
      }
    }
    a = b;
  }
  return a;
}

function gauss(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
}

const clampByte = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
