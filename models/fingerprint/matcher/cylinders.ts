/**
 * Minutia Cylinder-Code, bit version: for each minutia, a cylinder centred on it and turned to its direction, cut
 * into ns x ns spatial cells (only those whose centre lies within the radius are kept) x nd directional sections.
 * A bit is set when the neighbouring minutiae near the cell centre, with a direction relative to the central
 * minutia that falls in the section, contribute at least muPsi (spatial Gaussian x integral of the directional
 * Gaussian over the section). Cells outside the enlarged convex hull of the minutiae are invalid, so a partial
 * capture does not look like an empty area. Built once per template; comparing is then popcount work.
 *
 * Geometry is done in a right-handed frame (X = x, Y = -y), where our counter-clockwise minutia angles are plain
 * mathematical angles.
 */
import { TWO_PI } from '../minutiae.ts';
import { convexHull, inEnlargedHull, type Point } from './hull.ts';
import type { MccParams } from './params.ts';

/** Cell layout shared by all cylinders built with the same parameters. */
export interface CylinderLayout {
  /** Local (u, v) centre of each in-circle cell, in the minutia's frame. */
  cellU: Float64Array;
  cellV: Float64Array;
  cells: number;
  /** 32-bit words per cylinder (cells * nd bits) and per cell mask (cells bits). */
  words: number;
  cellWords: number;
}

const layouts = new Map<string, CylinderLayout>();

export function cylinderLayout(p: MccParams): CylinderLayout {
  const key = `${p.radius}/${p.ns}/${p.nd}`;
  const cached = layouts.get(key);
  if (cached) return cached;
  const step = (2 * p.radius) / p.ns;
  const us: number[] = [];
  const vs: number[] = [];
  for (let j = 0; j < p.ns; j++) {
    for (let i = 0; i < p.ns; i++) {
      const u = step * (i - (p.ns - 1) / 2);
      const v = step * (j - (p.ns - 1) / 2);
      if (u * u + v * v <= p.radius * p.radius) { us.push(u); vs.push(v); }
    }
  }
  const layout = {
    cellU: Float64Array.from(us),
    cellV: Float64Array.from(vs),
    cells: us.length,
    words: Math.ceil((us.length * p.nd) / 32),
    cellWords: Math.ceil(us.length / 32),
  };
  layouts.set(key, layout);
  return layout;
}

/** erf, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): plenty for a contribution compared with a threshold. */
function erf(x: number): number {
  const s = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

/** Signed angle difference in [-pi, pi). */
function dphi(a: number, b: number): number {
  let d = (a - b) % TWO_PI;
  if (d < -Math.PI) d += TWO_PI;
  else if (d >= Math.PI) d -= TWO_PI;
  return d;
}

export interface CylinderSet {
  /** Indices (into the minutiae given) of the minutiae whose cylinder is valid, in order. */
  index: Int32Array;
  /** Cylinder bits, `layout.words` words per cylinder. */
  bits: Int32Array;
  /** Validity of every bit (all nd bits of a valid cell set). */
  masks: Int32Array;
  /** Validity per cell, `layout.cellWords` words per cylinder. */
  cellMasks: Int32Array;
  /** Number of valid cells and of set bits per cylinder. */
  validCells: Uint16Array;
  ones: Uint16Array;
  /** 1 when every cell of the cylinder is valid (comparisons can skip the masks). */
  full: Uint8Array;
}

export interface PlanarMinutia {
  /** Right-handed frame: X = x, Y = -y (px at 500 dpi). */
  X: number;
  Y: number;
  /** Counter-clockwise radians. */
  theta: number;
}

export function buildCylinders(minutiae: readonly PlanarMinutia[], p: MccParams): CylinderSet {
  const L = cylinderLayout(p);
  const n = minutiae.length;
  const hull = convexHull(minutiae.map((m): Point => [m.X, m.Y]));
  const dd = TWO_PI / p.nd;
  const reach = p.radius + 3 * p.sigmaS;
  const near2 = (3 * p.sigmaS) ** 2;
  const gaussNorm = 1 / (p.sigmaS * Math.sqrt(2 * Math.PI));
  const twoS2 = 2 * p.sigmaS * p.sigmaS;
  const sqrt2D = p.sigmaD * Math.SQRT2;
  const nd = p.nd;

  const index: number[] = [];
  const bitsOut: Int32Array[] = [];
  const masksOut: Int32Array[] = [];
  const cellMasksOut: Int32Array[] = [];
  const validOut: number[] = [];
  const onesOut: number[] = [];
  const fullOut: number[] = [];
  const sums = new Float64Array(L.cells * p.nd);

  for (let c = 0; c < n; c++) {
    const m = minutiae[c]!;
    const cos = Math.cos(m.theta);
    const sin = Math.sin(m.theta);
    // Neighbours that can reach a cell, each with its nd directional weights (they do not depend on the cell).
    const nx: number[] = [];
    const ny: number[] = [];
    const dirW: number[] = [];
    for (let t = 0; t < n; t++) {
      if (t === c) continue;
      const o = minutiae[t]!;
      if (Math.hypot(o.X - m.X, o.Y - m.Y) > reach) continue;
      nx.push(o.X);
      ny.push(o.Y);
      const rel = dphi(o.theta, m.theta);
      for (let k = 0; k < p.nd; k++) {
        const alpha = dphi(-Math.PI + (k + 0.5) * dd, rel);
        dirW.push(0.5 * (erf((alpha + dd / 2) / sqrt2D) - erf((alpha - dd / 2) / sqrt2D)));
      }
    }
    if (nx.length < p.minMinutiae) continue;

    const cellMask = new Int32Array(L.cellWords);
    let valid = 0;
    sums.fill(0);
    for (let cell = 0; cell < L.cells; cell++) {
      const u = L.cellU[cell]!;
      const v = L.cellV[cell]!;
      const px = m.X + u * cos - v * sin;
      const py = m.Y + u * sin + v * cos;
      if (!inEnlargedHull(hull, px, py, p.omega)) continue;
      valid++;
      cellMask[cell >>> 5]! |= 1 << (cell & 31);
      for (let t = 0; t < nx.length; t++) {
        const dx = nx[t]! - px;
        const dy = ny[t]! - py;
        const d2 = dx * dx + dy * dy;
        if (d2 > near2) continue;
        const s = gaussNorm * Math.exp(-d2 / twoS2);
        for (let k = 0; k < nd; k++) sums[cell * nd + k]! += s * dirW[t * nd + k]!;
      }
    }
    if (valid < p.minValidCells * L.cells) continue;

    const bits = new Int32Array(L.words);
    const mask = new Int32Array(L.words);
    let ones = 0;
    for (let cell = 0; cell < L.cells; cell++) {
      if (!(cellMask[cell >>> 5]! & (1 << (cell & 31)))) continue;
      for (let k = 0; k < p.nd; k++) {
        const b = cell * p.nd + k;
        mask[b >>> 5]! |= 1 << (b & 31);
        if (sums[b]! >= p.muPsi) { bits[b >>> 5]! |= 1 << (b & 31); ones++; }
      }
    }
    index.push(c);
    bitsOut.push(bits);
    masksOut.push(mask);
    cellMasksOut.push(cellMask);
    validOut.push(valid);
    onesOut.push(ones);
    fullOut.push(valid === L.cells ? 1 : 0);
  }

  const concat = (parts: Int32Array[], w: number) => {
    const out = new Int32Array(parts.length * w);
    parts.forEach((a, i) => out.set(a, i * w));
    return out;
  };
  return {
    index: Int32Array.from(index),
    bits: concat(bitsOut, L.words),
    masks: concat(masksOut, L.words),
    cellMasks: concat(cellMasksOut, L.cellWords),
    validCells: Uint16Array.from(validOut),
    ones: Uint16Array.from(onesOut),
    full: Uint8Array.from(fullOut),
  };
}

/** The same cylinders reordered (`order[k]` = old position of the new k-th cylinder). */
export function permuteCylinders(c: CylinderSet, order: ArrayLike<number>, layout: CylinderLayout): CylinderSet {
  const n = c.index.length;
  const W = layout.words, CW = layout.cellWords;
  const out: CylinderSet = {
    index: new Int32Array(n), bits: new Int32Array(n * W), masks: new Int32Array(n * W), cellMasks: new Int32Array(n * CW),
    validCells: new Uint16Array(n), ones: new Uint16Array(n), full: new Uint8Array(n),
  };
  for (let k = 0; k < n; k++) {
    const o = order[k]!;
    out.index[k] = c.index[o]!;
    out.bits.set(c.bits.subarray(o * W, o * W + W), k * W);
    out.masks.set(c.masks.subarray(o * W, o * W + W), k * W);
    out.cellMasks.set(c.cellMasks.subarray(o * CW, o * CW + CW), k * CW);
    out.validCells[k] = c.validCells[o]!;
    out.ones[k] = c.ones[o]!;
    out.full[k] = c.full[o]!;
  }
  return out;
}
