/**
 * Synthetic near-infrared eye images, deterministic from a seed (pure functions, no I/O).
 *
 * An eye (`irisMaster`) is its texture: radial fibres (angular cosine modes whose phase drifts with the radius),
 * crypts (dark blobs), furrows (dark rings), a collarette, its grey level and its size. A capture (`renderCapture`)
 * places it: pupil dilation (the texture stretches as a rubber sheet, as real irises roughly do), a pupil not
 * centred in the iris and slightly elliptical, head tilt (rotation), eye position, eyelids (parabolas) with lashes,
 * one to three specular reflections in the pupil, defocus and sensor noise.
 */
import { mulberry32, uniform } from '../../common/prng.ts';

export interface IrisMaster {
  seed: number;
  irisRadius: number;
  irisLevel: number;
  modes: Array<{ m: number; amp: number; phase: number; drift: number }>;
  crypts: Array<{ rho: number; theta: number; size: number; depth: number }>;
  furrows: Array<{ rho: number; amp: number }>;
  /** Relative pupil offset in the iris (fraction of the iris radius). */
  offset: { x: number; y: number };
  /** Phase of the lash pattern along the lid. */
  lashPhase: number;
}

export interface CaptureParams {
  width: number;
  height: number;
  /** Pupil radius / iris radius. */
  dilation: number;
  rotation: number;
  centre: { x: number; y: number };
  upperLid: number;
  lowerLid: number;
  glints: Array<{ x: number; y: number; r: number }>;
  blur: number;
  noise: number;
  pupilEllipse: number;
}

export function irisMaster(seed: number): IrisMaster {
  const r = mulberry32(seed ^ 0x9e3779b9);
  // Fibres: most energy at 4-40 cycles per turn, the scale the iris code's filter sees (about 14 per turn).
  const modes = Array.from({ length: 48 }, () => ({ m: 4 + Math.floor(r() * r() * 60), amp: uniform(r, 3, 10), phase: uniform(r, 0, 2 * Math.PI), drift: uniform(r, -8, 8) }));
  const crypts = Array.from({ length: 10 + Math.floor(r() * 18) }, () => ({ rho: uniform(r, 0.12, 0.85), theta: uniform(r, 0, 2 * Math.PI), size: uniform(r, 0.03, 0.09), depth: uniform(r, 15, 45) }));
  const furrows = Array.from({ length: 1 + Math.floor(r() * 3) }, () => ({ rho: uniform(r, 0.5, 0.9), amp: uniform(r, 6, 16) }));
  return { seed, irisRadius: uniform(r, 88, 104), irisLevel: uniform(r, 95, 135), modes, crypts, furrows, offset: { x: uniform(r, -0.04, 0.04), y: uniform(r, -0.03, 0.05) }, lashPhase: uniform(r, 0, 100) };
}

export function captureParams(master: IrisMaster, sample: number, size = { width: 320, height: 280 }): CaptureParams {
  const r = mulberry32((master.seed * 7919 + sample * 104729) >>> 0);
  const glints = Array.from({ length: 1 + Math.floor(r() * 3) }, () => ({ x: uniform(r, -0.5, 0.5), y: uniform(r, -0.5, 0.4), r: uniform(r, 2, 5) }));
  return {
    ...size,
    dilation: uniform(r, 0.3, 0.52),
    rotation: uniform(r, -0.14, 0.14),
    centre: { x: size.width / 2 + uniform(r, -14, 14), y: size.height / 2 + uniform(r, -10, 10) },
    upperLid: uniform(r, 0.45, 0.95),
    lowerLid: uniform(r, 0.8, 1.1),
    glints,
    blur: uniform(r, 0.4, 1.4),
    noise: uniform(r, 2, 5),
    pupilEllipse: uniform(r, 0.97, 1.03),
  };
}

/** The 8-bit gray capture. */
export function renderCapture(master: IrisMaster, p: CaptureParams, noiseSeed: number): Uint8Array {
  const { width: w, height: h } = p;
  const R = master.irisRadius;
  const rp = p.dilation * R;
  const pcx = p.centre.x + master.offset.x * R;
  const pcy = p.centre.y + master.offset.y * R;
  const img = new Float32Array(w * h);
  const rand = mulberry32(noiseSeed);
  const upperY = p.centre.y - p.upperLid * R;
  const lowerY = p.centre.y + p.lowerLid * R;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const dx = x - p.centre.x;
      const dy = y - p.centre.y;
      const d = Math.hypot(dx, dy);
      // Skin, with the sclera inside the eye opening (between the lids).
      const span = 1 - (dx / (2.2 * R)) ** 2;
      const top = p.centre.y - (p.centre.y - upperY) * Math.max(0, span) * 1.15;
      const bottom = p.centre.y + (lowerY - p.centre.y) * Math.max(0, span) * 1.1;
      const inEye = span > 0 && y > top && y < bottom;
      let v = 175 + 20 * Math.sin(x * 0.03 + y * 0.02);
      if (inEye) v = 190 - 25 * (Math.abs(dx) / (2.2 * R));
      if (d < R + 1.5 && inEye) {
        // Iris: rubber-sheet coordinates around the (offset) pupil.
        const pdx = x - pcx;
        const pdy = (y - pcy) * p.pupilEllipse;
        const pd = Math.hypot(pdx, pdy);
        const theta = Math.atan2(pdy, pdx) - p.rotation;
        const rho = (pd - rp) / Math.max(1, R - rp);
        let t = master.irisLevel - 12 * rho;
        if (rho < 0.22) t -= 14 * (1 - rho / 0.22); // collarette and pupillary zone, darker
        for (const m of master.modes) t += m.amp * Math.cos(m.m * theta + m.phase + m.drift * rho) * (0.6 + 0.4 * rho);
        for (const c of master.crypts) {
          let dt = Math.abs(theta - c.theta) % (2 * Math.PI);
          if (dt > Math.PI) dt = 2 * Math.PI - dt;
          const q = ((rho - c.rho) / c.size) ** 2 + ((dt * (0.3 + rho)) / (c.size * 1.6)) ** 2;
          if (q < 9) t -= c.depth * Math.exp(-q);
        }
        for (const f of master.furrows) t -= f.amp * Math.exp(-(((rho - f.rho) / 0.02) ** 2));
        const limbus = Math.max(0, Math.min(1, R + 1.5 - d)) / 1.5;
        v = v * (1 - limbus) + t * limbus;
        if (pd < rp) v = 38 + 6 * Math.sin(pdx * 0.2);
      }
      // Upper lid shadow and lashes: dark strands hanging from the lid edge.
      if (inEye && y - top < 18) {
        const strand = Math.sin(x * 0.9 + master.lashPhase + Math.sin(x * 0.13 + master.lashPhase) * 4);
        if (strand > 0.6) v = Math.min(v, 60 + (y - top) * 4);
      }
      img[y * w + x] = v;
    }
  }
  for (const g of p.glints) {
    const gx = pcx + g.x * rp;
    const gy = pcy + g.y * rp;
    for (let y = Math.floor(gy - 2 * g.r); y <= gy + 2 * g.r; y++) {
      for (let x = Math.floor(gx - 2 * g.r); x <= gx + 2 * g.r; x++) {
        if (x < 0 || y < 0 || x >= w || y >= h) continue;
        const q = ((x - gx) ** 2 + (y - gy) ** 2) / (g.r * g.r);
        img[y * w + x] = Math.max(img[y * w + x]!, 250 * Math.exp(-q * q));
      }
    }
  }
  const blurred = blur(img, w, h, p.blur);
  const out = new Uint8Array(w * h);
  for (let i = 0; i < out.length; i++) {
    // Box-Muller noise.
    const n = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    out[i] = Math.max(0, Math.min(255, Math.round(blurred[i]! + p.noise * n)));
  }
  return out;
}

function blur(img: Float32Array, w: number, h: number, sigma: number): Float32Array {
  const r = Math.ceil(2.5 * sigma);
  const k: number[] = [];
  let s = 0;
  for (let i = -r; i <= r; i++) s += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  const tmp = new Float32Array(w * h);
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    let a = 0;
    for (let i = -r; i <= r; i++) a += k[i + r]! * img[y * w + Math.min(w - 1, Math.max(0, x + i))]!;
    tmp[y * w + x] = a / s;
  }
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    let a = 0;
    for (let i = -r; i <= r; i++) a += k[i + r]! * tmp[Math.min(h - 1, Math.max(0, y + i)) * w + x]!;
    out[y * w + x] = a / s;
  }
  return out;
}

/** Eye `eye` (0-based) of a dataset seed, capture `sample` (0-based). */
export function syntheticIris(datasetSeed: number, eye: number, sample: number, size = { width: 320, height: 280 }): { width: number; height: number; data: Uint8Array } {
  const master = irisMaster((datasetSeed * 1_000_003 + eye * 7_777 + 1) >>> 0);
  const params = captureParams(master, sample, size);
  return { width: size.width, height: size.height, data: renderCapture(master, params, (master.seed + sample * 31_337) >>> 0) };
}
