/**
 * atan2 for the per-pixel orientation field, several times faster than Math.atan2 in V8 and within a few units in
 * the last place of a double of it: results stored as float32 (as the orientation field is) are the same but for
 * inputs that fall within those few units of a float32 rounding boundary.
 *
 * The ratio t = min / max of |y| and |x| lies in [0, 1]; it is moved next to the nearest of nine points k / 8 with
 * atan(t) = atan(k / 8) + atan((t - k / 8) / (1 + t k / 8)), where the remaining argument is at most 1 / 16 and six
 * terms of the Taylor series of atan are exact to double precision. Octant and quadrant are then restored.
 */

const STEPS = 8;
/** atan(k / 8), k = 0..8. */
const ANCHOR = Float64Array.from({ length: STEPS + 1 }, (_, k) => Math.atan(k / STEPS));
const HALF_PI = Math.PI / 2;

export function atan2(y: number, x: number): number {
  const ax = x < 0 ? -x : x;
  const ay = y < 0 ? -y : y;
  // Zeros (signed), infinities and NaN keep Math.atan2's exact conventions.
  if (ax === 0 || ay === 0 || !(ax < Infinity) || !(ay < Infinity)) return Math.atan2(y, x);
  const swap = ay > ax;
  const t = swap ? ax / ay : ay / ax;
  const k = Math.round(t * STEPS);
  const c = k / STEPS;
  const r = (t - c) / (1 + t * c);
  const r2 = r * r;
  // atan(r) = r - r^3/3 + r^5/5 - r^7/7 + r^9/9 - r^11/11 (|r| <= 1/16: the next term is below 2^-55 of r)
  const series = r + r * r2 * (-1 / 3 + r2 * (1 / 5 + r2 * (-1 / 7 + r2 * (1 / 9 + r2 * (-1 / 11)))));
  let a = ANCHOR[k]! + series;
  if (swap) a = HALF_PI - a;
  if (x < 0) a = Math.PI - a;
  return y < 0 ? -a : a;
}

/**
 * A faster atan2, within 1e-6 rad of Math.atan2 (an odd minimax polynomial of degree 15 in t = min / max, one
 * division): for the refinement's field, whose angles only choose and blend filters, where the last float32 bit of
 * atan2 above buys nothing and its second division and table lookup cost a third of the stage's field time.
 */
export function atan2Approx(y: number, x: number): number {
  const ax = x < 0 ? -x : x;
  const ay = y < 0 ? -y : y;
  const max = ax > ay ? ax : ay;
  // Zeros (signed), infinities and NaN keep Math.atan2's exact conventions, as atan2 above does.
  if (ay === 0 || !(max > 0) || !(max < Infinity)) return Math.atan2(y, x);
  const t = (ax > ay ? ay : ax) / max;
  const s = t * t;
  let a = t + t * s * (-0.3332985605 + s * (0.1994653599 + s * (-0.1390853351 + s * (0.0964200441 + s * (-0.055909886 + s * (0.0218612288 + s * -0.004054058))))));
  if (ay > ax) a = HALF_PI - a;
  if (x < 0) a = Math.PI - a;
  return y < 0 ? -a : a;
}
