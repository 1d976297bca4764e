/**
 * DET curve: FNMR against FMR on normal-deviate (probit) axes, the standard way to show a biometric system's error
 * trade-off. Drawn as SVG (pure), rendered to PNG by sharp.
 */
import sharp from 'sharp';
import type { ErrorRates } from './metrics.ts';

/**
 * Inverse of the standard normal CDF, by a rational approximation in three regions (lower tail, centre, upper
 * tail); relative error about 1e-9, far below what a plot needs.
 */
export function probit(p: number): number {
  if (p <= 0) return -Infinity;
  if (p >= 1) return Infinity;
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  let x: number;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  } else if (p <= 1 - lo) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  return x;
}

const TICKS = [0.0001, 0.001, 0.01, 0.05, 0.2, 0.4];
const MORE_TICKS = [0.6, 0.8, 0.95];
const LO = 0.00005;

export function detSvg(rates: ErrorRates, title: string, width = 640, height = 640): string {
  const m = { l: 70, r: 20, t: 50, b: 60 };
  // Axes to 50% unless part of the curve (a weak system's FNMR at low FMR) would be flattened against the top.
  const HI = rates.det.some((p) => p.fmr >= LO && p.fnmr > 0.5) ? 0.97 : 0.5;
  const ticks = HI > 0.5 ? [...TICKS, ...MORE_TICKS] : TICKS;
  const clamp = (p: number) => Math.min(HI, Math.max(LO, p));
  const span = probit(HI) - probit(LO);
  const sx = (p: number) => m.l + ((probit(clamp(p)) - probit(LO)) / span) * (width - m.l - m.r);
  const sy = (p: number) => height - m.b - ((probit(clamp(p)) - probit(LO)) / span) * (height - m.t - m.b);
  const pct = (p: number) => `${+(p * 100).toPrecision(2)}%`;
  const grid = ticks.map(
    (t) =>
      `<line x1="${sx(t)}" y1="${m.t}" x2="${sx(t)}" y2="${height - m.b}" stroke="#ddd"/><line x1="${m.l}" y1="${sy(t)}" x2="${width - m.r}" y2="${sy(t)}" stroke="#ddd"/>` +
      `<text x="${sx(t)}" y="${height - m.b + 18}" text-anchor="middle" font-size="12">${pct(t)}</text><text x="${m.l - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="12">${pct(t)}</text>`,
  ).join('');
  // Every operating point, those with a zero rate too (they sit on the clamped edge): dropping the point where both
  // rates are 0 would join its neighbours by a diagonal through operating points that do not exist.
  const pts = rates.det.map((p) => `${sx(p.fmr).toFixed(1)},${sy(p.fnmr).toFixed(1)}`);
  const e = rates.eer.value;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(title)}</text>
<text x="${width / 2}" y="40" text-anchor="middle" font-size="12" fill="#555">${rates.genuine.toLocaleString('en-US')} genuine, ${rates.impostor.toLocaleString('en-US')} impostor comparisons; EER ${pct(e)}</text>
${grid}
<rect x="${m.l}" y="${m.t}" width="${width - m.l - m.r}" height="${height - m.t - m.b}" fill="none" stroke="#333"/>
<line x1="${sx(LO)}" y1="${sy(LO)}" x2="${sx(HI)}" y2="${sy(HI)}" stroke="#bbb" stroke-dasharray="4 4"/>
<polyline points="${pts.join(' ')}" fill="none" stroke="#1f5fbf" stroke-width="2"/>
<circle cx="${sx(e)}" cy="${sy(e)}" r="5" fill="#d33"/>
<text x="${width / 2}" y="${height - 18}" text-anchor="middle" font-size="13">False match rate (FMR)</text>
<text x="18" y="${height / 2}" text-anchor="middle" font-size="13" transform="rotate(-90 18 ${height / 2})">False non-match rate (FNMR)</text>
</svg>`;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

export async function writeDetPng(rates: ErrorRates, title: string, path: string): Promise<void> {
  await sharp(Buffer.from(detSvg(rates, title))).png().toFile(path);
}
