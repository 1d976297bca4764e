import { describe, expect, it } from 'vitest';
import { detSvg } from '../models/evaluation/det-plot.ts';
import { errorRates } from '../models/evaluation/metrics.ts';

/** The polyline's points, as [x, y] pixel pairs. */
function curve(svg: string): Array<[number, number]> {
  const m = /<polyline points="([^"]*)"/.exec(svg);
  return m![1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
}

describe('DET plot', () => {
  it('draws a perfectly separated set as steps through the corner where both rates are 0, not a diagonal', () => {
    // 36 genuine scores above 286 impostor scores: FNMR reaches 1/36 = 2.8% only when FMR is 0, and FMR 1/286 = 0.35%
    // only when FNMR is 0.
    const gen = Float64Array.from({ length: 36 }, (_, i) => 0.6 + i / 100);
    const imp = Float64Array.from({ length: 286 }, (_, i) => i / 1000);
    const rates = errorRates(gen, imp);
    expect(rates.det.some((p) => p.fmr === 0 && p.fnmr === 0)).toBe(true);
    const pts = curve(detSvg(rates, 'separated'));
    const [left, bottom] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[1]))];
    // The corner (FMR and FNMR at the axes' lower limit) is on the curve ...
    expect(pts).toContainEqual([left, bottom]);
    // ... and every segment is horizontal or vertical: no segment joins FNMR > 0 to FMR > 0 directly.
    for (let k = 1; k < pts.length; k++) {
      const [a, b] = [pts[k - 1]!, pts[k]!];
      expect(a[0] === b[0] || a[1] === b[1]).toBe(true);
    }
  });

  it('still draws an overlapping set through its interior', () => {
    const gen = Float64Array.from({ length: 200 }, (_, i) => 0.3 + i / 300);
    const imp = Float64Array.from({ length: 2000 }, (_, i) => i / 2500);
    const pts = curve(detSvg(errorRates(gen, imp), 'overlap'));
    const left = Math.min(...pts.map((p) => p[0]));
    const bottom = Math.max(...pts.map((p) => p[1]));
    expect(pts.filter((p) => p[0] > left && p[1] < bottom).length).toBeGreaterThan(50);
  });
});
