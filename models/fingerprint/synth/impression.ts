/**
 * One impression of a master finger, as an optical sensor would see it: the finger placed with some translation and
 * rotation, the skin elastically distorted, pressed with more or less force on a dry or wet finger, maybe partly
 * lifted off the platen, then imaged with blur and noise. Dark ridges on a light background, 8 bits.
 * Deterministic from (master, impressionSeed, options).
 */
import { UsageError } from '../../../protocol/errors.ts';
import { drawElastic, elasticOffset, masterToImpression, type RigidPlacement } from './distortion.ts';
import { valueNoise } from './noise.ts';
import { mixSeed, rng, type Rng } from './random.ts';
import type { Impression, ImpressionOptions, MasterFingerprint } from './types.ts';

export const SENSOR_WIDTH = 256;
export const SENSOR_HEIGHT = 288;

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);
const smooth01 = (v: number): number => {
  const t = clamp01(v);
  return t * t * (3 - 2 * t);
};

/** Bilinear sample of a master raster; `outside` beyond its border. */
function sample(img: Float32Array, w: number, h: number, x: number, y: number, outside = 0): number {
  if (x < 0 || y < 0 || x > w - 1 || y > h - 1) return outside;
  const x0 = Math.min(w - 2, Math.floor(x));
  const y0 = Math.min(h - 2, Math.floor(y));
  const fx = x - x0;
  const fy = y - y0;
  const i = y0 * w + x0;
  const top = img[i]! + (img[i + 1]! - img[i]!) * fx;
  const bottom = img[i + w]! + (img[i + w + 1]! - img[i + w]!) * fx;
  return top + (bottom - top) * fy;
}

/** Separable [1 2 1] / 4 blur, in place, `times` times (sensor optics; more for wet fingers). */
function blur121(img: Float32Array, w: number, h: number, times: number): void {
  const tmp = new Float32Array(img.length);
  for (let t = 0; t < times; t++) {
    for (let y = 0; y < h; y++) {
      const row = y * w;
      for (let x = 0; x < w; x++) tmp[row + x] = (img[row + Math.max(0, x - 1)]! + 2 * img[row + x]! + img[row + Math.min(w - 1, x + 1)]!) * 0.25;
    }
    for (let y = 0; y < h; y++) {
      const up = Math.max(0, y - 1) * w;
      const down = Math.min(h - 1, y + 1) * w;
      const row = y * w;
      for (let x = 0; x < w; x++) img[row + x] = (tmp[up + x]! + 2 * tmp[row + x]! + tmp[down + x]!) * 0.25;
    }
  }
}

/** Dirt spots (dark) and platen scratches (light), drawn into the ink map. */
function drawArtefacts(r: Rng, ink: Float32Array, w: number, h: number, noise: number): void {
  const blobs = Math.floor(noise * 6 * r.next());
  for (let i = 0; i < blobs; i++) {
    const cx = r.uniform(0, w);
    const cy = r.uniform(0, h);
    const rad = r.uniform(1.5, 5);
    const strength = r.uniform(0.4, 0.9);
    for (let y = Math.max(0, Math.floor(cy - rad - 1)); y <= Math.min(h - 1, Math.ceil(cy + rad + 1)); y++) {
      for (let x = Math.max(0, Math.floor(cx - rad - 1)); x <= Math.min(w - 1, Math.ceil(cx + rad + 1)); x++) {
        const v = strength * clamp01(rad + 0.5 - Math.hypot(x - cx, y - cy));
        if (v > ink[y * w + x]!) ink[y * w + x] = v;
      }
    }
  }
  const scratches = Math.floor(noise * 4 * r.next());
  for (let i = 0; i < scratches; i++) {
    const a = r.uniform(0, Math.PI);
    const nx = -Math.sin(a);
    const ny = Math.cos(a);
    const off = r.uniform(-0.4, 0.4) * Math.min(w, h);
    const half = r.uniform(0.5, 1.2);
    const keep = r.uniform(0.1, 0.5);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const d = Math.abs((x - w / 2) * nx + (y - h / 2) * ny - off);
        if (d < half + 1) ink[y * w + x] = ink[y * w + x]! * (keep + (1 - keep) * clamp01(d - half));
      }
    }
  }
}

function checkOptions(seed: number, o: ImpressionOptions): void {
  const bad = (what: string): never => {
    throw new UsageError(`renderImpression: ${what}`);
  };
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) bad(`impression seed must be an integer from 0 to 2^32-1, got ${seed}`);
  for (const [k, v] of [['width', o.width], ['height', o.height]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 16 || v > 4096)) bad(`${k} must be an integer from 16 to 4096, got ${v}`);
  }
  const ranges: Array<[keyof ImpressionOptions, number, number]> = [
    ['maxRotationDeg', 0, 180],
    ['maxTranslation', 0, 4096],
    ['distortion', 0, 50],
    ['moisture', -1, 1],
    ['noise', 0, 1],
    ['partialContactProbability', 0, 1],
  ];
  for (const [k, lo, hi] of ranges) {
    const v = o[k];
    if (v !== undefined && !(v >= lo && v <= hi)) bad(`${k} must be from ${lo} to ${hi}, got ${v}`);
  }
}

export function renderImpression(master: MasterFingerprint, impressionSeed: number, opts: ImpressionOptions = {}): Impression {
  checkOptions(impressionSeed, opts);
  const W = opts.width ?? SENSOR_WIDTH;
  const H = opts.height ?? SENSOR_HEIGHT;
  const r = rng(mixSeed(impressionSeed, 0x51f7));
  const sil = master.silhouette;
  const size = Math.min(sil.rx, sil.ry);

  // Placement: rotations are mostly small, translations up to 10% of each side.
  const maxRot = ((opts.maxRotationDeg ?? 20) * Math.PI) / 180;
  const rotation = Math.max(-maxRot, Math.min(maxRot, (r.normal() * maxRot) / 2));
  const mtx = opts.maxTranslation ?? 0.1 * W;
  const mty = opts.maxTranslation ?? 0.1 * H;
  const place: RigidPlacement = { rotation, tx: W / 2 + r.uniform(-1, 1) * mtx, ty: H / 2 + r.uniform(-1, 1) * mty, cx: sil.cx, cy: sil.cy };
  const strength = opts.distortion ?? r.uniform(0, 6);
  const elastic = drawElastic(r, strength, { x: place.tx, y: place.ty }, size);

  // Skin and contact: wet or hard-pressed fingers leave a larger contact area.
  const moisture = opts.moisture ?? Math.max(-1, Math.min(1, r.normal() * 0.4));
  const noise = opts.noise ?? r.uniform(0, 0.5);
  const contactScale = Math.max(0.8, Math.min(1, 0.92 + 0.06 * moisture + r.uniform(-0.06, 0.06)));
  const partial = r.next() < (opts.partialContactProbability ?? 0.3);
  const cutAngle = r.uniform(0, 2 * Math.PI);
  const cutNx = Math.cos(cutAngle);
  const cutNy = Math.sin(cutAngle);
  const cutOffset = r.uniform(0.15, 0.55) * size;

  // Wet: lower ink threshold (thick, merging ridges); dry: higher threshold (thin ridges) and broken ridges.
  const threshold = -0.5 * moisture;
  const breaks = valueNoise(r, W, H, r.uniform(3.5, 6));
  const texture = valueNoise(r, W, H, 2.5);
  const shade = valueNoise(r, W, H, 60);
  const background = r.uniform(200, 240);
  const ridgeGray = r.uniform(25, 80);
  const gradX = r.uniform(-12, 12) / W;
  const gradY = r.uniform(-12, 12) / H;

  const ink = new Float32Array(W * H);
  const contact = new Float32Array(W * H);
  const off = { x: 0, y: 0 };
  let maxDistortion = 0;
  let foreground = 0;
  const cosR = Math.cos(rotation);
  const sinR = Math.sin(rotation);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      elasticOffset(elastic, x, y, off);
      const mag = Math.sqrt(off.x * off.x + off.y * off.y);
      // impressionToMaster, inlined: this loop runs for every output pixel.
      const dx = x + off.x - place.tx;
      const dy = y + off.y - place.ty;
      const m = { x: sil.cx + cosR * dx + sinR * dy, y: sil.cy - sinR * dx + cosR * dy };
      const i = y * W + x;
      const rad = sample(master.radius, master.width, master.height, m.x, m.y, 2);
      let c = clamp01(((contactScale - rad) * size) / 5);
      if (partial) c *= clamp01((cutOffset - ((m.x - sil.cx) * cutNx + (m.y - sil.cy) * cutNy)) / 6);
      if (c <= 0) continue;
      if (c > 0.5) {
        foreground++;
        if (mag > maxDistortion) maxDistortion = mag;
      }
      // Less pressure towards the border of the contact area: fainter ridges there.
      const pressure = 0.55 + 0.45 * smooth01(((contactScale - rad) * size) / 30);
      const rv = sample(master.ridges, master.width, master.height, m.x, m.y);
      let v = smooth01((rv - threshold) / 0.45 + 0.5);
      if (moisture < 0) v *= smooth01((breaks[i]! - -moisture * 0.42) / 0.12 + 0.5);
      else v = Math.max(v, 0.9 * smooth01((breaks[i]! - (1 - 0.45 * moisture)) / 0.08));
      v *= 0.8 + 0.2 * texture[i]!;
      ink[i] = v * pressure;
      contact[i] = c;
    }
  }
  drawArtefacts(r, ink, W, H, noise);
  const gray = new Float32Array(W * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      const bg = background + (x - W / 2) * gradX + (y - H / 2) * gradY + (shade[i]! - 0.5) * 12;
      gray[i] = bg - (bg - ridgeGray) * ink[i]! * contact[i]!;
    }
  }
  blur121(gray, W, H, moisture > 0.4 ? 2 : 1);
  const sigma = 2 + 12 * noise;
  const data = new Uint8Array(W * H);
  for (let i = 0; i < W * H; i++) {
    const v = Math.round(gray[i]! + sigma * r.normal());
    data[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }

  return {
    width: W,
    height: H,
    data,
    truth: {
      seed: impressionSeed,
      cls: master.pattern.cls,
      transform: { rotation, tx: place.tx, ty: place.ty, maxDistortion },
      cores: master.pattern.cores.map((p) => masterToImpression(place, p.x, p.y)),
      deltas: master.pattern.deltas.map((p) => masterToImpression(place, p.x, p.y)),
      moisture,
      noise,
      foreground: foreground / (W * H),
      partialContact: partial,
    },
  };
}

/** The rigid placement an impression used (to map its pixels back to the master, e.g. to align impressions). */
export function placementOf(master: MasterFingerprint, truth: Impression['truth']): RigidPlacement {
  return { rotation: truth.transform.rotation, tx: truth.transform.tx, ty: truth.transform.ty, cx: master.silhouette.cx, cy: master.silhouette.cy };
}
