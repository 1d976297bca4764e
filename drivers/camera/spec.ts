/**
 * The camera setting a kiosk is configured with, one string:
 *
 *   v4l2:/dev/video0?width=640&height=480&fps=15[&format=mjpeg]
 *   http://camera.local/mjpeg   https://user:pass@camera/stream   (MJPEG over HTTP; the URL is used as given)
 *   dir:/path/to/images[?loop=1&fps=5]
 *   virtual:/path/to/dir-or-image[?fps=10&loop=1&width=640&height=480&stallAfter=N]
 *
 * Paths are taken literally up to the first "?" (no percent-decoding); "dir:///abs" is accepted as "dir:/abs".
 * Unknown parameters are errors, so a typo does not silently fall back to a default. Pure: no I/O.
 */
import { CameraConfigError } from './types.ts';

export type FrameSourceSpec =
  | { kind: 'v4l2'; device: string; width?: number; height?: number; fps?: number; format?: string }
  | { kind: 'http'; url: string }
  | { kind: 'dir'; path: string; loop: boolean; fps?: number }
  | { kind: 'virtual'; path: string; fps?: number; loop?: boolean; width?: number; height?: number; stallAfterFrames?: number };

const SCHEMES = ['v4l2', 'http', 'https', 'dir', 'virtual'];

export function parseFrameSourceSpec(spec: string): FrameSourceSpec {
  const bad = (why: string): CameraConfigError => new CameraConfigError(`camera setting ${JSON.stringify(spec)}: ${why}`, { spec });
  const trimmed = spec.trim();
  const m = /^([a-z][a-z0-9+.-]*):(.*)$/is.exec(trimmed);
  if (!m) throw bad(`no scheme; expected one of ${SCHEMES.map((s) => s + ':').join(' ')} (e.g. v4l2:/dev/video0)`);
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;

  if (scheme === 'http' || scheme === 'https') {
    let url: URL;
    try {
      url = new URL(trimmed);
    } catch {
      throw bad('not a valid URL');
    }
    if (!url.hostname) throw bad('the URL has no host');
    return { kind: 'http', url: url.href };
  }
  if (!SCHEMES.includes(scheme)) throw bad(`unknown scheme "${scheme}:"; expected one of ${SCHEMES.map((s) => s + ':').join(' ')}`);

  const q = rest.indexOf('?');
  let path = q < 0 ? rest : rest.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : rest.slice(q + 1));
  if (path.startsWith('//')) path = path.slice(2);
  if (path.length === 0) throw bad(scheme === 'v4l2' ? 'no device path (e.g. v4l2:/dev/video0)' : 'no path');

  const seen = new Set<string>();
  for (const key of params.keys()) {
    if (seen.has(key)) throw bad(`parameter "${key}" given twice`);
    seen.add(key);
  }
  const allowed: Record<string, string[]> = {
    v4l2: ['width', 'height', 'fps', 'format'],
    dir: ['loop', 'fps'],
    virtual: ['fps', 'loop', 'width', 'height', 'stallAfter'],
  };
  for (const key of seen) {
    if (!allowed[scheme]!.includes(key)) throw bad(`unknown parameter "${key}" for ${scheme}: (allowed: ${allowed[scheme]!.join(', ')})`);
  }

  const int = (key: string, min: number, max: number): number | undefined => {
    const v = params.get(key);
    if (v === null) return undefined;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw bad(`${key} must be an integer from ${min} to ${max}, got "${v}"`);
    return Number(v);
  };
  const num = (key: string, min: number, max: number): number | undefined => {
    const v = params.get(key);
    if (v === null) return undefined;
    if (!/^\d+(\.\d+)?$/.test(v) || Number(v) < min || Number(v) > max) throw bad(`${key} must be a number from ${min} to ${max}, got "${v}"`);
    return Number(v);
  };
  const bool = (key: string): boolean | undefined => {
    const v = params.get(key);
    if (v === null) return undefined;
    if (['1', 'true', 'yes', ''].includes(v.toLowerCase())) return true;
    if (['0', 'false', 'no'].includes(v.toLowerCase())) return false;
    throw bad(`${key} must be 1/true/yes or 0/false/no, got "${v}"`);
  };
  const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

  switch (scheme) {
    case 'v4l2': {
      const width = int('width', 1, 16384);
      const height = int('height', 1, 16384);
      if ((width === undefined) !== (height === undefined)) throw bad('give both width and height, or neither');
      const format = params.get('format') ?? undefined;
      if (format !== undefined && !/^[a-z0-9_]+$/i.test(format)) throw bad(`format must be a pixel format name such as mjpeg or yuyv422, got "${format}"`);
      return defined({ kind: 'v4l2', device: path, width, height, fps: int('fps', 1, 1000), format });
    }
    case 'dir':
      return defined({ kind: 'dir', path, loop: bool('loop') ?? false, fps: num('fps', 0.001, 1000) });
    default: {
      const width = int('width', 16, 8192);
      const height = int('height', 16, 8192);
      if ((width !== undefined && width % 2 !== 0) || (height !== undefined && height % 2 !== 0)) throw bad('width and height must be even');
      return defined({
        kind: 'virtual',
        path,
        fps: num('fps', 0.001, 240),
        loop: bool('loop'),
        width,
        height,
        stallAfterFrames: int('stallAfter', 1, 1_000_000_000),
      });
    }
  }
}
