/**
 * The virtual camera: fixture images played as a live MJPEG camera through the very path a V4L2 camera takes.
 * ffmpeg decodes the images, fits each into a common frame size (letterboxed, aspect kept), paces them at the
 * requested frame rate in real time, encodes MJPEG onto its stdout, and FfmpegFrameSource splits that pipe, so
 * tests and demos exercise the real spawning, splitting, queueing and timeout code.
 *
 * Fault injection: stallAfterFrames makes the camera go silent after that many frames without closing its pipe
 * (the ffmpeg child is SIGSTOPped), which is what a wedged USB camera looks like; nextFrame then times out.
 */
import { resolve } from 'node:path';
import { FfmpegFrameSource, type FrameSourceTimingOptions } from '../camera/ffmpeg-source.ts';
import { imageMime, isDirectory, listImages } from '../camera/directory-source.ts';
import { CameraConfigError, CameraError, iterateFrames, type Frame, type FrameSource, type FrameSourceStats } from '../camera/types.ts';

/** Each image is one ffmpeg input with its own decoder; past this a folder is not a fixture any more. */
const MAX_IMAGES = 256;

export interface VirtualCameraOptions extends FrameSourceTimingOptions {
  /** Image files (played in this order), or a folder whose images are played in name order. */
  images: string[] | string;
  /** Frames per second. Default 10. */
  fps?: number;
  /** Play the images again and again. Default true (like a camera); false ends the source after the last. */
  loop?: boolean;
  /** Frame size; images are scaled to fit and padded. Default 640x480. Must be even. */
  width?: number;
  height?: number;
  /** Fault: deliver this many frames, then go silent without closing (nextFrame times out). */
  stallAfterFrames?: number;
  /** JPEG quality, ffmpeg's -q:v (2 best .. 31 worst). Default 3. */
  quality?: number;
  ffmpegPath?: string;
}

/** The ffmpeg inputs and filter graph that play `files` as a camera (pure; exported for tests and logs). */
export function virtualCameraArgs(
  files: string[],
  o: { fps: number; loop: boolean; width: number; height: number },
): { inputArgs: string[]; filterArgs: string[] } {
  if (files.length === 0) throw new CameraConfigError('virtual camera: no images');
  if (files.length > MAX_IMAGES) throw new CameraConfigError(`virtual camera: ${files.length} images, at most ${MAX_IMAGES}`);
  const { fps, width: w, height: h } = o;
  const inputArgs: string[] = [];
  const chains: string[] = [];
  files.forEach((file, i) => {
    // image2 with no pattern (a "%d" in a name is literal), and file: so a ":" in a path is not a protocol.
    inputArgs.push('-f', 'image2', '-pattern_type', 'none', '-i', `file:${resolve(file)}`);
    chains.push(
      `[${i}:v]scale=${w}:${h}:force_original_aspect_ratio=decrease,pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuvj420p[v${i}]`,
    );
  });
  const labels = files.map((_, i) => `[v${i}]`).join('');
  // loop keeps the decoded (scaled) frames in memory and replays them; settb+setpts space frames 1/fps apart (in
  // microseconds: the images' 1/25 s time base would round fps above 25 to equal timestamps); fps gives the encoder
  // that rate as its time base (else "Invalid pts" above 25 fps); realtime holds each frame back until its time, so
  // the pipe delivers at the camera's rate.
  const loop = o.loop ? `loop=loop=-1:size=${files.length}:start=0,` : '';
  const graph = `${chains.join(';')};${labels}concat=n=${files.length}:v=1:a=0,${loop}settb=AVTB,setpts=N/(${fps}*TB),fps=${fps},realtime[out]`;
  return { inputArgs, filterArgs: ['-filter_complex', graph, '-map', '[out]'] };
}

export class VirtualCamera implements FrameSource {
  readonly description: string;
  private readonly options: VirtualCameraOptions;
  private readonly fps: number;
  private readonly width: number;
  private readonly height: number;
  private inner: FfmpegFrameSource | null = null;
  private closed = false;

  constructor(options: VirtualCameraOptions) {
    this.options = options;
    this.fps = options.fps ?? 10;
    this.width = options.width ?? 640;
    this.height = options.height ?? 480;
    if (!(this.fps > 0 && this.fps <= 240)) throw new CameraConfigError(`virtual camera: fps must be above 0 and at most 240, got ${this.fps}`);
    for (const [name, v] of [['width', this.width], ['height', this.height]] as const) {
      if (!(Number.isInteger(v) && v >= 16 && v <= 8192 && v % 2 === 0)) throw new CameraConfigError(`virtual camera: ${name} must be an even integer from 16 to 8192, got ${v}`);
    }
    const s = options.stallAfterFrames;
    if (s !== undefined && !(Number.isInteger(s) && s >= 1)) throw new CameraConfigError(`virtual camera: stallAfterFrames must be a positive integer, got ${s}`);
    const imgs = options.images;
    this.description = `virtual:${typeof imgs === 'string' ? imgs : imgs.length === 1 ? imgs[0] : `${imgs.length} images`}`;
  }

  async open(): Promise<void> {
    if (this.inner) throw new CameraError(this.description, 'failed', 'open() called twice');
    const files = await this.resolveImages();
    const { inputArgs, filterArgs } = virtualCameraArgs(files, {
      fps: this.fps,
      loop: this.options.loop ?? true,
      width: this.width,
      height: this.height,
    });
    const stallAfter = this.options.stallAfterFrames;
    const inner: FfmpegFrameSource = new FfmpegFrameSource({
      ...this.options,
      description: this.description,
      inputArgs,
      filterArgs,
      onFrame: stallAfter === undefined ? undefined : (frame) => {
        if (frame.seq === stallAfter) inner.suspend();
      },
    });
    this.inner = inner;
    if (this.closed) return;
    await inner.open();
  }

  nextFrame(timeoutMs?: number): Promise<Frame> {
    if (!this.inner) return Promise.reject(new CameraError(this.description, 'failed', 'nextFrame() before open()'));
    return this.inner.nextFrame(timeoutMs);
  }

  frames(): AsyncIterable<Frame> {
    return iterateFrames(this);
  }

  stats(): FrameSourceStats {
    return this.inner ? this.inner.stats() : { received: 0, dropped: 0, oversize: 0, corrupt: 0 };
  }

  /** The ffmpeg child's pid while it runs. */
  get pid(): number | undefined {
    return this.inner?.pid;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.inner?.close();
  }

  private async resolveImages(): Promise<string[]> {
    const imgs = this.options.images;
    if (typeof imgs === 'string' && (await isDirectory(imgs))) {
      const files = await listImages(imgs);
      if (files.length === 0) throw new CameraConfigError(`virtual camera: no images in ${imgs}`, { path: imgs });
      return files;
    }
    const files = typeof imgs === 'string' ? [imgs] : imgs;
    for (const f of files) {
      if (imageMime(f) === null) throw new CameraConfigError(`virtual camera: ${f} is not an image file (by its extension)`, { path: f });
    }
    return files;
  }
}

/** A virtual camera playing fixture images; call open() before reading frames. */
export function virtualCamera(options: VirtualCameraOptions): VirtualCamera {
  return new VirtualCamera(options);
}
