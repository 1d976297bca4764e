/**
 * Orientation descriptors: what the ridge flow looks like around each minutia, the one feature beyond minutiae that a
 * template carries (after Tico and Kuosmanen, "Fingerprint matching using an orientation-based minutia descriptor",
 * IEEE TPAMI 2003). Sparse prints give minutia cylinders with few neighbours, and chance coincidences of minutiae
 * between different fingers often sit in ridge flow that does not agree: the flow around a minutia tells them apart.
 *
 * A descriptor samples the ridge orientation at DESCRIPTOR.rings x DESCRIPTOR.directions points on circles around
 * the minutia (pixels at 500 dpi; the first direction along the minutia's own, then counter-clockwise), each relative
 * to the minutia's direction (so the descriptor turns with the finger), modulo pi, as a code: 0 where the point is
 * off the finger, else 1..levels for the nearest of the bin centres 0, pi / levels, ... (code 1 is flow along the
 * minutia). Codes pack 4 bits each, in sample order, most significant bits first: 8 bytes per minutia.
 *
 * Shared by the extractor (which computes the codes), the template codec (which carries them) and the matcher, whose
 * vector form (matcher/similarity.ts) computes descriptorAgreement below: pure functions only.
 */
import { BadTemplateError } from '../../protocol/errors.ts';

export const DESCRIPTOR = Object.freeze({
  /** Circle radii, pixels at 500 dpi (about 3 and 6 ridge periods). */
  rings: Object.freeze([27, 54]) as readonly number[],
  directions: 8,
  /** Orientation bins over pi; code 0 means "off the finger", so levels + 1 codes must fit the bits. */
  levels: 15,
  bits: 4,
});

// Every code the bits can hold is a valid one, so a template's codes never need checking when read.
if (DESCRIPTOR.levels + 1 !== 1 << DESCRIPTOR.bits) throw new Error('descriptor levels + 1 must be 2^bits');

export const DESCRIPTOR_SAMPLES = DESCRIPTOR.rings.length * DESCRIPTOR.directions;
export const DESCRIPTOR_BYTES = Math.ceil((DESCRIPTOR_SAMPLES * DESCRIPTOR.bits) / 8);

/**
 * The codes of one minutia at (x, y) with direction `angle` (radians counter-clockwise as seen on the image), from a
 * ridge-normal field (radians, image coordinates y down, modulo pi) and a foreground mask, both width x height at 500
 * dpi. Points are taken at the nearest pixel.
 */
export function describeMinutia(x: number, y: number, angle: number, normal: Float32Array, mask: Uint8Array, width: number, height: number, out = new Uint8Array(DESCRIPTOR_SAMPLES)): Uint8Array {
  const { rings, directions, levels } = DESCRIPTOR;
  let k = 0;
  for (const r of rings) {
    for (let d = 0; d < directions; d++) {
      const a = angle + (d * 2 * Math.PI) / directions;
      const px = Math.round(x + r * Math.cos(a));
      const py = Math.round(y - r * Math.sin(a));
      if (px < 0 || py < 0 || px >= width || py >= height || !mask[py * width + px]) {
        out[k++] = 0;
        continue;
      }
      // The ridge runs at normal + pi/2 in image coordinates (y down): -normal + pi/2 counter-clockwise as seen.
      const ridge = Math.PI / 2 - normal[py * width + px]!;
      let rel = (ridge - angle) % Math.PI;
      if (rel < 0) rel += Math.PI;
      // Bins centred on 0, pi / levels, ...: flow along the minutia (the usual case) sits mid-bin, not on an edge.
      out[k++] = 1 + (Math.round((rel / Math.PI) * levels) % levels);
    }
  }
  return out;
}

/** Codes (DESCRIPTOR_SAMPLES per minutia, concatenated) packed to DESCRIPTOR_BYTES per minutia. */
export function packDescriptors(codes: Uint8Array): Uint8Array {
  if (codes.length % DESCRIPTOR_SAMPLES !== 0) throw new RangeError(`${codes.length} descriptor codes are not a whole number of descriptors`);
  const n = codes.length / DESCRIPTOR_SAMPLES;
  const out = new Uint8Array(n * DESCRIPTOR_BYTES);
  for (let m = 0; m < n; m++) {
    let bit = 0;
    for (let s = 0; s < DESCRIPTOR_SAMPLES; s++) {
      const c = codes[m * DESCRIPTOR_SAMPLES + s]!;
      if (c > DESCRIPTOR.levels) throw new RangeError(`descriptor code ${c} is above ${DESCRIPTOR.levels}`);
      for (let b = DESCRIPTOR.bits - 1; b >= 0; b--, bit++) if ((c >> b) & 1) out[m * DESCRIPTOR_BYTES + (bit >> 3)]! |= 0x80 >> (bit & 7);
    }
  }
  return out;
}

/** The inverse of packDescriptors, for `count` minutiae. */
export function unpackDescriptors(bytes: Uint8Array, count: number): Uint8Array {
  if (bytes.length !== count * DESCRIPTOR_BYTES) {
    throw new BadTemplateError(`orientation descriptors: ${bytes.length} bytes for ${count} minutiae (expected ${count * DESCRIPTOR_BYTES})`);
  }
  const out = new Uint8Array(count * DESCRIPTOR_SAMPLES);
  for (let m = 0; m < count; m++) {
    let bit = 0;
    for (let s = 0; s < DESCRIPTOR_SAMPLES; s++) {
      let c = 0;
      for (let b = 0; b < DESCRIPTOR.bits; b++, bit++) c = (c << 1) | ((bytes[m * DESCRIPTOR_BYTES + (bit >> 3)]! >> (7 - (bit & 7))) & 1);
      out[m * DESCRIPTOR_SAMPLES + s] = c;
    }
  }
  return out;
}

/** cos(2 x the angle between the centres of bins u and v), for codes u, v in 1..levels (index u * (levels + 1) + v). */
export const CODE_AGREEMENT = Float32Array.from({ length: (DESCRIPTOR.levels + 1) ** 2 }, (_, i) => {
  const u = Math.floor(i / (DESCRIPTOR.levels + 1)), v = i % (DESCRIPTOR.levels + 1);
  return u && v ? Math.cos((2 * Math.PI * (u - v)) / DESCRIPTOR.levels) : 0;
});

/**
 * Agreement of two descriptors (codes at offsets `ia` and `ib`): the mean cos(2 x orientation difference) over the
 * points on the finger in both, in [-1, 1]; NaN when fewer than `minSamples` such points (nothing to compare).
 */
export function descriptorAgreement(a: Uint8Array, ia: number, b: Uint8Array, ib: number, minSamples: number): number {
  const L = DESCRIPTOR.levels + 1;
  let sum = 0, n = 0;
  for (let s = 0; s < DESCRIPTOR_SAMPLES; s++) {
    const u = a[ia + s]!, v = b[ib + s]!;
    if (u === 0 || v === 0) continue;
    sum += CODE_AGREEMENT[u * L + v]!;
    n++;
  }
  return n < minSamples ? NaN : sum / n;
}
