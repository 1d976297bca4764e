/**
 * A folder of image files as a camera: each file, in name order, is one frame (its bytes as they are on disk).
 * For enrolment batches and demos; the images are not re-encoded, so PNGs stay PNGs.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CameraConfigError, CameraError, iterateFrames, type Frame, type FrameSource, type FrameSourceStats } from './types.ts';

const MIME_BY_EXTENSION: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.bmp': 'image/bmp',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
};

export const IMAGE_EXTENSIONS: readonly string[] = Object.keys(MIME_BY_EXTENSION);

/** The MIME type of an image file by its extension (case-insensitive), or null when it is not one we take. */
export function imageMime(path: string): string | null {
  return MIME_BY_EXTENSION[extname(path).toLowerCase()] ?? null;
}

/** Natural order, so frame2.jpg comes before frame10.jpg; stable across machines (fixed locale). */
const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'variant' });

/** The image files directly in dir (not in subfolders), sorted by name; full paths. */
export async function listImages(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such folder' : code === 'ENOTDIR' ? 'not a folder' : (e as Error).message;
    throw new CameraConfigError(`image folder ${dir}: ${why}`, { path: dir });
  }
  const names = entries.filter((e) => (e.isFile() || e.isSymbolicLink()) && imageMime(e.name) !== null).map((e) => e.name);
  names.sort((a, b) => collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0));
  return names.map((n) => join(dir, n));
}

export interface DirectorySourceOptions {
  dir: string;
  /** Start again from the first file after the last. Default false (the source ends). */
  loop?: boolean;
  /** Pace frames at this rate; default: as fast as they are asked for. */
  fps?: number;
}

export class DirectoryFrameSource implements FrameSource {
  readonly description: string;
  private readonly dir: string;
  private readonly loop: boolean;
  private readonly intervalMs: number;
  private files: string[] = [];
  private index = 0;
  private seq = 0;
  private nextAt = 0;
  private state: 'new' | 'open' | 'closed' = 'new';

  constructor(options: DirectorySourceOptions) {
    if (!options.dir) throw new CameraConfigError('image folder camera: no folder given');
    if (options.fps !== undefined && !(options.fps > 0 && options.fps <= 1000)) throw new CameraConfigError(`image folder camera: fps must be above 0, got ${options.fps}`);
    this.dir = resolve(options.dir);
    this.description = `dir:${options.dir}`;
    this.loop = options.loop ?? false;
    this.intervalMs = options.fps ? 1000 / options.fps : 0;
  }

  async open(): Promise<void> {
    if (this.state !== 'new') throw new CameraError(this.description, 'failed', 'open() called twice');
    this.files = await listImages(this.dir);
    if (this.files.length === 0) throw new CameraConfigError(`image folder ${this.dir}: no images (${IMAGE_EXTENSIONS.join(' ')})`, { path: this.dir });
    this.state = 'open';
  }

  /** Reads the next file. timeoutMs is accepted for the interface; local reads do not stall like a camera. */
  async nextFrame(_timeoutMs?: number): Promise<Frame> {
    if (this.state === 'new') throw new CameraError(this.description, 'failed', 'nextFrame() before open()');
    if (this.state === 'closed') throw new CameraError(this.description, 'closed', 'the source was closed');
    if (this.index >= this.files.length) {
      if (!this.loop) throw new CameraError(this.description, 'ended', `all ${this.files.length} images delivered`);
      this.index = 0;
    }
    const path = this.files[this.index++]!;
    if (this.intervalMs > 0) {
      const wait = this.nextAt - Date.now();
      if (wait > 0) await sleep(wait);
      this.nextAt = Math.max(this.nextAt, Date.now() - this.intervalMs) + this.intervalMs;
    }
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (e) {
      throw new CameraError(this.description, 'failed', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
    }
    return { data, mime: imageMime(path) ?? 'application/octet-stream', seq: ++this.seq, receivedAt: Date.now(), source: this.description };
  }

  frames(): AsyncIterable<Frame> {
    return iterateFrames(this);
  }

  stats(): FrameSourceStats {
    return { received: this.seq, dropped: 0, oversize: 0, corrupt: 0 };
  }

  async close(): Promise<void> {
    this.state = 'closed';
  }
}

/** Whether path is an existing folder (for callers that take a folder or a list of files). */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
