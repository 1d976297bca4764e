import { describe, expect, it } from 'vitest';
import { UsageError } from '../protocol/errors.ts';
import { fingerFields, synthesizeFinger } from '../models/fingerprint/synth/master.ts';
import { renderImpression, placementOf } from '../models/fingerprint/synth/impression.ts';
import { masterToImpression } from '../models/fingerprint/synth/distortion.ts';
import { poincareIndex } from '../models/fingerprint/synth/orientation.ts';
import { CLASS_FREQUENCIES, drawPattern } from '../models/fingerprint/synth/pattern.ts';
import { drawSilhouette } from '../models/fingerprint/synth/silhouette.ts';
import { rng } from '../models/fingerprint/synth/random.ts';
import type { Impression, MasterFingerprint, PatternClass } from '../models/fingerprint/synth/types.ts';

const CLASSES: PatternClass[] = ['arch', 'tented_arch', 'left_loop', 'right_loop', 'whorl'];

/** Gray value at a real position (bilinear); NaN outside the image. */
function at(img: Impression, x: number, y: number): number {
  if (x < 0 || y < 0 || x > img.width - 1 || y > img.height - 1) return NaN;
  const x0 = Math.min(img.width - 2, Math.floor(x));
  const y0 = Math.min(img.height - 2, Math.floor(y));
  const fx = x - x0;
  const fy = y - y0;
  const d = img.data;
  const i = y0 * img.width + x0;
  return (d[i]! * (1 - fx) + d[i + 1]! * fx) * (1 - fy) + (d[i + img.width]! * (1 - fx) + d[i + img.width + 1]! * fx) * fy;
}

/**
 * Ridge period at (cx, cy) measured on the image alone: local orientation from the structure tensor, a gray profile
 * across the ridges, and the first autocorrelation peak after the first trough.
 */
function measurePeriod(img: Impression, cx: number, cy: number): { period: number; ridgeAngle: number } | null {
  let gxx = 0;
  let gyy = 0;
  let gxy = 0;
  for (let y = cy - 12; y <= cy + 12; y++) {
    for (let x = cx - 12; x <= cx + 12; x++) {
      const gx = at(img, x + 1, y) - at(img, x - 1, y);
      const gy = at(img, x, y + 1) - at(img, x, y - 1);
      if (Number.isNaN(gx) || Number.isNaN(gy)) return null;
      gxx += gx * gx;
      gyy += gy * gy;
      gxy += gx * gy;
    }
  }
  // Dominant gradient direction = normal to the ridges.
  const phi = 0.5 * Math.atan2(2 * gxy, gxx - gyy);
  const nx = Math.cos(phi);
  const ny = Math.sin(phi);
  const n = 64;
  const prof: number[] = [];
  for (let t = -n / 2; t < n / 2; t++) {
    // Average three parallel lines along the ridge direction to reduce noise.
    let v = 0;
    for (const s of [-2, 0, 2]) v += at(img, cx + t * nx - s * ny, cy + t * ny + s * nx);
    if (Number.isNaN(v)) return null;
    prof.push(v);
  }
  const mean = prof.reduce((a, b) => a + b, 0) / n;
  const z = prof.map((v) => v - mean);
  const ac = (lag: number): number => {
    let s = 0;
    for (let i = 0; i + lag < n; i++) s += z[i]! * z[i + lag]!;
    return s / (n - lag);
  };
  const acs = Array.from({ length: 20 }, (_, lag) => ac(lag));
  let lag = 1;
  while (lag < 19 && acs[lag + 1]! < acs[lag]!) lag++; // down to the first trough
  while (lag < 19 && acs[lag + 1]! > acs[lag]!) lag++; // up to the next peak
  if (lag >= 19 || acs[lag]! <= 0) return null;
  // Parabolic refinement of the peak.
  const a = acs[lag - 1]!;
  const b = acs[lag]!;
  const c = acs[lag + 1]!;
  const den = a - 2 * b + c;
  return { period: lag + (den !== 0 ? (0.5 * (a - c)) / den : 0), ridgeAngle: phi + Math.PI / 2 };
}

/** An impression resampled on the master's grid through its ground-truth rigid placement (NaN where unseen). */
function alignToMaster(master: MasterFingerprint, img: Impression): Float32Array {
  const out = new Float32Array(master.width * master.height).fill(NaN);
  const place = placementOf(master, img.truth);
  for (let y = 0; y < master.height; y += 2) {
    for (let x = 0; x < master.width; x += 2) {
      if (master.radius[y * master.width + x]! > 0.7) continue;
      const p = masterToImpression(place, x, y);
      out[y * master.width + x] = at(img, p.x, p.y);
    }
  }
  return out;
}

function ncc(a: Float32Array, b: Float32Array): { r: number; n: number } {
  let n = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]!) || Number.isNaN(b[i]!)) continue;
    n++;
    sa += a[i]!;
    sb += b[i]!;
  }
  if (n < 500) return { r: NaN, n };
  const ma = sa / n;
  const mb = sb / n;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]!) || Number.isNaN(b[i]!)) continue;
    const u = a[i]! - ma;
    const v = b[i]! - mb;
    ab += u * v;
    aa += u * u;
    bb += v * v;
  }
  return { r: ab / Math.sqrt(aa * bb || 1), n };
}

describe('synthetic fingerprints: master', () => {
  it('is deterministic from the seed, and different seeds give different fingers', () => {
    const t0 = performance.now();
    const a = synthesizeFinger(11);
    const ms = performance.now() - t0;
    const b = synthesizeFinger(11);
    const c = synthesizeFinger(12);
    expect(Buffer.from(a.ridges.buffer).equals(Buffer.from(b.ridges.buffer))).toBe(true);
    expect(a.pattern).toEqual(b.pattern);
    expect(Buffer.from(a.ridges.buffer).equals(Buffer.from(c.ridges.buffer))).toBe(false);
    console.log(`[timing] master ${a.width}x${a.height}: ${ms.toFixed(0)} ms (first, cold), ${a.iterations} half-resolution Gabor iterations`);
  });

  it('draws pattern classes with natural frequencies', () => {
    const r = rng(5);
    const s = drawSilhouette(r, 320, 384);
    const counts = new Map<PatternClass, number>();
    const n = 4000;
    for (let i = 0; i < n; i++) {
      const p = drawPattern(r, s);
      counts.set(p.cls, (counts.get(p.cls) ?? 0) + 1);
      expect(p.cores.length).toBe({ arch: 0, tented_arch: 1, left_loop: 1, right_loop: 1, whorl: 2 }[p.cls]);
      expect(p.deltas.length).toBe({ arch: 0, tented_arch: 1, left_loop: 1, right_loop: 1, whorl: 2 }[p.cls]);
      if (p.cls === 'left_loop') expect(p.deltas[0]!.x).toBeGreaterThan(p.cores[0]!.x);
      if (p.cls === 'right_loop') expect(p.deltas[0]!.x).toBeLessThan(p.cores[0]!.x);
    }
    for (const [cls, f] of CLASS_FREQUENCIES) expect(Math.abs((counts.get(cls) ?? 0) / n - f)).toBeLessThan(0.03);
  });

  it('has the orientation singularities of its class: Poincare index +1/2 at cores, -1/2 at deltas, 0 elsewhere', () => {
    const size = 12;
    for (const cls of CLASSES) {
      for (let seed = 1; seed <= 6; seed++) {
        const f = fingerFields(seed * 7919, { cls });
        const sing = [...f.pattern.cores, ...f.pattern.deltas];
        // A small box centred on each singular point.
        for (const [points, expected] of [[f.pattern.cores, 0.5], [f.pattern.deltas, -0.5]] as const) {
          for (const p of points) {
            const x = Math.round(p.x);
            const y = Math.round(p.y);
            expect(f.radius[y * f.width + x]!, `${cls} seed ${seed}: singular point inside the fingerprint`).toBeLessThan(0.95);
            expect(poincareIndex(f.orientation, f.width, x - 5, y - 5, x + 5, y + 5), `${cls} seed ${seed} at ${x},${y}`).toBeCloseTo(expected, 2);
          }
        }
        // A coarse grid over the fingerprint: every cell clear of the singular points has index 0.
        let cells = 0;
        for (let y0 = 0; y0 + size < f.height; y0 += size) {
          for (let x0 = 0; x0 + size < f.width; x0 += size) {
            if (f.radius[(y0 + size / 2) * f.width + x0 + size / 2]! > 0.95) continue;
            if (sing.some((p) => p.x > x0 - 3 && p.x < x0 + size + 3 && p.y > y0 - 3 && p.y < y0 + size + 3)) continue;
            cells++;
            expect(poincareIndex(f.orientation, f.width, x0, y0, x0 + size, y0 + size), `${cls} seed ${seed} cell ${x0},${y0}`).toBeCloseTo(0, 2);
          }
        }
        expect(cells).toBeGreaterThan(400);
      }
    }
  });
});

describe('synthetic fingerprints: impressions', () => {
  const masters = [101, 202, 303, 404].map((s) => synthesizeFinger(s));

  it('are deterministic 8-bit images of the requested size', () => {
    const m = masters[0]!;
    const a = renderImpression(m, 5);
    const b = renderImpression(m, 5);
    const c = renderImpression(m, 6);
    expect(a.width).toBe(256);
    expect(a.height).toBe(288);
    expect(a.data).toBeInstanceOf(Uint8Array);
    expect(a.data.length).toBe(256 * 288);
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
    expect(a.truth).toEqual(b.truth);
    expect(Buffer.from(a.data).equals(Buffer.from(c.data))).toBe(false);
    expect(() => renderImpression(m, 5, { width: 0 })).toThrow(UsageError);
    expect(() => renderImpression(m, 5, { moisture: 2 })).toThrow(/moisture must be from -1 to 1/);
    expect(() => synthesizeFinger(-1)).toThrow(UsageError);
    const big = renderImpression(m, 5, { width: 416, height: 560 });
    expect(big.data.length).toBe(416 * 560);
    expect(Math.abs(a.truth.transform.rotation)).toBeLessThanOrEqual((20 * Math.PI) / 180 + 1e-9);
  });

  it('look like optical sensor images: dark ridges on light background, contrast, plausible area, 8-11 px period', () => {
    const periods: number[] = [];
    const angleErrors: number[] = [];
    let images = 0;
    for (const [mi, m] of masters.entries()) {
      for (let k = 0; k < 4; k++) {
        const img = renderImpression(m, 100 * mi + k);
        images++;
        expect(img.truth.foreground, `finger ${mi} impression ${k}`).toBeGreaterThan(0.15);
        expect(img.truth.foreground).toBeLessThanOrEqual(1);
        // Background: the image's corners are mostly light (the finger is rounded).
        const sorted = Float32Array.from(img.data).sort();
        const p05 = sorted[Math.floor(sorted.length * 0.05)]!;
        const p95 = sorted[Math.floor(sorted.length * 0.95)]!;
        expect(p95 - p05, 'ridge/valley contrast').toBeGreaterThan(90);
        expect(p95).toBeGreaterThan(170);
        // Period at points on the finger (rigid map of master points well inside the contact area).
        const place = placementOf(m, img.truth);
        for (let y = 40; y < m.height; y += 40) {
          for (let x = 40; x < m.width; x += 40) {
            if (m.radius[y * m.width + x]! > 0.6) continue;
            const p = masterToImpression(place, x, y);
            const v = measurePeriod(img, Math.round(p.x), Math.round(p.y));
            if (v === null) continue;
            periods.push(v.period);
            // The ridges follow the orientation field (turned by the impression's rotation).
            let d = (v.ridgeAngle - (m.orientation[y * m.width + x]! + img.truth.transform.rotation)) % Math.PI;
            if (d < 0) d += Math.PI;
            angleErrors.push(Math.min(d, Math.PI - d));
          }
        }
      }
    }
    periods.sort((a, b) => a - b);
    const median = periods[Math.floor(periods.length / 2)]!;
    const inRange = periods.filter((p) => p >= 7.5 && p <= 11.5).length / periods.length;
    angleErrors.sort((a, b) => a - b);
    const angleMedian = (angleErrors[Math.floor(angleErrors.length / 2)]! * 180) / Math.PI;
    console.log(`[period] ${periods.length} points on ${images} impressions: median ${median.toFixed(2)} px, ${(100 * inRange).toFixed(0)}% in 7.5-11.5; median orientation error ${angleMedian.toFixed(1)} deg`);
    expect(angleMedian).toBeLessThan(8);
    expect(periods.length).toBeGreaterThan(40);
    expect(median).toBeGreaterThanOrEqual(8);
    expect(median).toBeLessThanOrEqual(11);
    expect(inRange).toBeGreaterThan(0.8);
  });

  it('of one finger are more alike than impressions of different fingers (genuine/impostor structure)', () => {
    const K = 4;
    const aligned = masters.map((m, mi) => Array.from({ length: K }, (_, k) => alignToMaster(m, renderImpression(m, 1000 * mi + k, { partialContactProbability: 0 }))));
    const genuine: number[] = [];
    const impostor: number[] = [];
    for (let a = 0; a < masters.length; a++) {
      for (let i = 0; i < K; i++) {
        for (let j = i + 1; j < K; j++) {
          const r = ncc(aligned[a]![i]!, aligned[a]![j]!);
          if (!Number.isNaN(r.r)) genuine.push(r.r);
        }
        for (let b = a + 1; b < masters.length; b++) {
          const r = ncc(aligned[a]![i]!, aligned[b]![i]!);
          if (!Number.isNaN(r.r)) impostor.push(r.r);
        }
      }
    }
    const mean = (v: number[]): number => v.reduce((s, x) => s + x, 0) / v.length;
    console.log(`[ncc] genuine mean ${mean(genuine).toFixed(3)} min ${Math.min(...genuine).toFixed(3)}; impostor mean ${mean(impostor).toFixed(3)} max ${Math.max(...impostor).toFixed(3)}`);
    expect(genuine.length).toBeGreaterThan(15);
    expect(impostor.length).toBeGreaterThan(15);
    expect(mean(genuine)).toBeGreaterThan(mean(impostor) + 0.2);
    expect(Math.min(...genuine)).toBeGreaterThan(Math.max(...impostor));
  });

  it('times masters and impressions (printed, not asserted)', () => {
    const t0 = performance.now();
    const ms = [500, 501, 502].map((s) => synthesizeFinger(s));
    const t1 = performance.now();
    let n = 0;
    for (const m of ms) for (let k = 0; k < 8; k++, n++) renderImpression(m, k);
    const t2 = performance.now();
    console.log(`[timing] ${((t1 - t0) / ms.length).toFixed(0)} ms per master, ${((t2 - t1) / n).toFixed(1)} ms per 256x288 impression (one core)`);
  });
});
