/**
 * Thinning to a one-pixel skeleton: Zhang-Suen's two sub-iterations driven by lookup tables over the 8-neighbour
 * code, visiting only the pixels still set; then a pass that removes the staircase pixels Zhang-Suen leaves (a
 * pixel whose two 4-neighbours meeting at a corner are both set is redundant when its removal keeps the skeleton
 * connected), so that every skeleton pixel off a junction has exactly two neighbours.
 */

// Neighbour bit order, clockwise from north: P2 (N), P3 (NE), P4 (E), P5 (SE), P6 (S), P7 (SW), P8 (W), P9 (NW).
const DX = [0, 1, 1, 1, 0, -1, -1, -1];
const DY = [-1, -1, 0, 1, 1, 1, 0, -1];

function transitions(code: number): number {
  let t = 0;
  for (let k = 0; k < 8; k++) if (!((code >> k) & 1) && (code >> ((k + 1) % 8)) & 1) t++;
  return t;
}

function popcount(code: number): number {
  let c = 0;
  for (let k = 0; k < 8; k++) c += (code >> k) & 1;
  return c;
}

const bit = (code: number, k: number) => (code >> k) & 1;

/** LUT[pass][code] = 1 when the pixel is deleted in that sub-iteration. */
const LUT = [0, 1].map((pass) => {
  const t = new Uint8Array(256);
  for (let code = 0; code < 256; code++) {
    const b = popcount(code);
    if (b < 2 || b > 6 || transitions(code) !== 1) continue;
    const [p2, p4, p6, p8] = [bit(code, 0), bit(code, 2), bit(code, 4), bit(code, 6)];
    const ok = pass === 0 ? p2 * p4 * p6 === 0 && p4 * p6 * p8 === 0 : p2 * p4 * p8 === 0 && p2 * p6 * p8 === 0;
    t[code] = ok ? 1 : 0;
  }
  return t;
});

/** Number of 0 -> 1 transitions around the 8-neighbourhood (2x the crossing number). */
export const TRANSITIONS = Uint8Array.from({ length: 256 }, (_, code) => transitions(code));

/** The 8-neighbour code of pixel i (bit k set when neighbour k, in the order of DX/DY, is set). Unrolled: hot. */
export function neighbourCode(img: Uint8Array, width: number, i: number): number {
  const n = i - width;
  const s = i + width;
  return (
    (img[n] ? 1 : 0) | (img[n + 1] ? 2 : 0) | (img[i + 1] ? 4 : 0) | (img[s + 1] ? 8 : 0) |
    (img[s] ? 16 : 0) | (img[s - 1] ? 32 : 0) | (img[i - 1] ? 64 : 0) | (img[n - 1] ? 128 : 0)
  );
}

/** Number of 8-connected groups among the set neighbours (two 4-neighbours touch diagonally across a corner). */
export const RING_GROUPS = Uint8Array.from({ length: 256 }, (_, code) => {
  let filled = code;
  for (let k = 1; k < 8; k += 2) if (bit(code, k - 1) && bit(code, (k + 1) % 8)) filled |= 1 << k;
  return filled === 255 ? 1 : transitions(filled);
});

export const NEIGHBOUR_DX = DX;
export const NEIGHBOUR_DY = DY;

/** Thins a binary image in place-safe fashion (returns a new image); the one-pixel frame is cleared. */
export function thin(binary: Uint8Array, width: number, height: number): Uint8Array {
  const img = Uint8Array.from(binary);
  for (let x = 0; x < width; x++) (img[x] = 0), (img[(height - 1) * width + x] = 0);
  for (let y = 0; y < height; y++) (img[y * width] = 0), (img[y * width + width - 1] = 0);
  // The pixels still set, in scan order, compacted after every iteration; deletions of a sub-iteration are applied
  // after it has looked at every pixel (Zhang-Suen's parallel rule). A pixel kept by a sub-iteration can only be
  // deleted by that sub-iteration later once a neighbour has gone: `recheck` holds, per pixel, one bit per
  // sub-iteration that still has to look at it.
  let count = 0;
  for (let i = 0; i < img.length; i++) if (img[i]) count++;
  const live = new Int32Array(count);
  const del = new Int32Array(count);
  const recheck = new Uint8Array(img.length);
  for (let i = 0, k = 0; i < img.length; i++) if (img[i]) (live[k++] = i), (recheck[i] = 3);
  const ring = Int32Array.of(-width - 1, -width, -width + 1, -1, 1, width - 1, width, width + 1);
  for (let changed = true; changed; ) {
    changed = false;
    for (let pass = 0; pass < 2; pass++) {
      const lut = LUT[pass]!;
      const flag = pass + 1;
      let n = 0;
      for (let k = 0; k < count; k++) {
        const i = live[k]!;
        if (!(recheck[i]! & flag) || !img[i]) continue;
        recheck[i] = recheck[i]! & ~flag;
        if (lut[neighbourCode(img, width, i)]) del[n++] = i;
      }
      for (let k = 0; k < n; k++) {
        const i = del[k]!;
        img[i] = 0;
        for (let r = 0; r < 8; r++) recheck[i + ring[r]!] = 3;
      }
      if (n) changed = true;
    }
    let kept = 0;
    for (let k = 0; k < count; k++) if (img[live[k]!] === 1) live[kept++] = live[k]!;
    count = kept;
  }
  // Staircase cleanup: a pixel at the inner corner of an L (two 4-neighbours meeting at a corner) whose neighbours
  // form one 8-connected group is redundant: its neighbours touch diagonally without it.
  for (let k = 0; k < count; k++) {
    const i = live[k]!;
    const code = neighbourCode(img, width, i);
    if (STAIRCASE[code]) img[i] = 0;
  }
  return img;
}

/** Per 8-neighbour code: 1 when the pixel is a removable staircase corner (see thin). */
const STAIRCASE = Uint8Array.from({ length: 256 }, (_, code) => {
  const corner = (bit(code, 0) && bit(code, 2)) || (bit(code, 2) && bit(code, 4)) || (bit(code, 4) && bit(code, 6)) || (bit(code, 6) && bit(code, 0));
  return corner && popcount(code) >= 2 && RING_GROUPS[code] === 1 ? 1 : 0;
});
