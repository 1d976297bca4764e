/**
 * Pattern class and singular points of a master finger. Class frequencies follow the natural distribution used by
 * SFinGe (Wilson et al.'s counts on the FBI database): loops dominate, arches are rare.
 */
import type { Rng } from './random.ts';
import type { Pattern, PatternClass, Silhouette } from './types.ts';

export const CLASS_FREQUENCIES: ReadonlyArray<readonly [PatternClass, number]> = [
  ['arch', 0.037],
  ['tented_arch', 0.029],
  ['left_loop', 0.338],
  ['right_loop', 0.317],
  ['whorl', 0.279],
];

/** Places cores and deltas for a class, relative to the fingerprint area (positions typical of rolled prints). */
export function drawPattern(r: Rng, s: Silhouette, forced?: PatternClass): Pattern {
  const cls = forced ?? r.pick(CLASS_FREQUENCIES);
  // The core sits a little above the centre of the fingertip; deltas are lower, towards the sides.
  const core = { x: s.cx + r.uniform(-0.08, 0.08) * s.rx, y: s.cy + r.uniform(-0.2, 0.02) * s.ry };
  switch (cls) {
    case 'arch':
      return { cls, cores: [], deltas: [] };
    case 'tented_arch':
      return { cls, cores: [core], deltas: [{ x: core.x + r.uniform(-0.08, 0.08) * s.rx, y: core.y + r.uniform(0.3, 0.45) * s.ry }] };
    case 'left_loop':
    case 'right_loop': {
      // A left loop's ridges enter and leave on the left, so its delta is on the right (as seen on the image).
      const side = cls === 'left_loop' ? 1 : -1;
      const delta = { x: core.x + side * r.uniform(0.45, 0.7) * s.rx, y: core.y + r.uniform(0.4, 0.62) * s.ry };
      return { cls, cores: [core], deltas: [delta] };
    }
    case 'whorl': {
      // Two cores close together (a spiral or concentric centre) and two deltas, one on each side.
      const dist = r.uniform(0.08, 0.22) * s.ry;
      const tilt = r.uniform(-0.5, 0.5);
      const c1 = { x: core.x - (Math.sin(tilt) * dist) / 2, y: core.y - (Math.cos(tilt) * dist) / 2 };
      const c2 = { x: core.x + (Math.sin(tilt) * dist) / 2, y: core.y + (Math.cos(tilt) * dist) / 2 };
      const dy = core.y + r.uniform(0.4, 0.6) * s.ry;
      const d1 = { x: core.x - r.uniform(0.55, 0.75) * s.rx, y: dy + r.uniform(-0.08, 0.08) * s.ry };
      const d2 = { x: core.x + r.uniform(0.55, 0.75) * s.rx, y: dy + r.uniform(-0.08, 0.08) * s.ry };
      return { cls, cores: [c1, c2], deltas: [d1, d2] };
    }
  }
}
