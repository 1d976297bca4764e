/**
 * Frames from an ffmpeg child process: ffmpeg reads the camera (or anything else it can open), writes MJPEG to
 * its stdout, and we split that pipe into JPEGs with MjpegSplitter. Debian's ffmpeg on PATH does the device work,
 * so there is no native code of ours between the kernel and the JPEG.
 *
 * The child is killed on close() and when this process exits; if it dies on its own, the error carries the last
 * lines it wrote to stderr (which is where ffmpeg says what went wrong, e.g. "No such file or directory").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { FrameQueue } from './frame-queue.ts';
import { MjpegSplitter } from './mjpeg-splitter.ts';
import { CameraConfigError, CameraError, iterateFrames, type Frame, type FrameSource, type FrameSourceStats } from './types.ts';

export interface FrameSourceTimingOptions {
  /** How long nextFrame() waits by default (frames() too). Default 5000 ms. */
  frameTimeoutMs?: number;
  /** How long open() waits for the first frame (device start-up, ffmpeg probing). Default 15000 ms. */
  startTimeoutMs?: number;
  /** Frames kept for a slow consumer before the oldest are dropped. Default 4. */
  queueSize?: number;
  /** Frames larger than this are dropped. Default 16 MiB. */
  maxFrameBytes?: number;
}

export interface FfmpegSourceOptions extends FrameSourceTimingOptions {
  /** Names the source in errors and frames, e.g. "v4l2:/dev/video0". */
  description: string;
  /** Input options and the input itself, e.g. ["-f", "v4l2", ..., "-i", "/dev/video0"]. */
  inputArgs: string[];
  /** Options between the input and the encoder, e.g. ["-vf", "scale=640:480"] or a filter graph with -map. */
  filterArgs?: string[];
  /** The input is already MJPEG: pass the camera's JPEGs through untouched (`-c:v copy`) instead of re-encoding. */
  copy?: boolean;
  /** JPEG quality when re-encoding, ffmpeg's -q:v scale (2 best .. 31 worst). Default 3. */
  quality?: number;
  /** The ffmpeg binary. Default "ffmpeg" from PATH. */
  ffmpegPath?: string;
  /** Called for each frame as it is received, before it is queued (the virtual camera's fault injection uses it). */
  onFrame?: (frame: Frame) => void;
}

const STDERR_KEEP = 8192;
const STDERR_LINES = 8;

/** Children still running, killed if this process exits without closing them (they would hold the camera). */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  liveChildren.add(child);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of liveChildren) c.kill('SIGKILL');
  });
}

/** The ffmpeg command line for a source (exported for tests and for logging what we run). */
export function ffmpegArgs(options: Pick<FfmpegSourceOptions, 'inputArgs' | 'filterArgs' | 'copy' | 'quality'>): string[] {
  const quality = options.quality ?? 3;
  if (!Number.isInteger(quality) || quality < 2 || quality > 31) throw new CameraConfigError(`JPEG quality must be an integer from 2 to 31, got ${quality}`);
  const codec = options.copy ? ['-c:v', 'copy'] : ['-c:v', 'mjpeg', '-q:v', String(quality)];
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    ...options.inputArgs,
    ...(options.filterArgs ?? []),
    '-an',
    // One output frame per frame the filters produce: no duplicates to fill a constant rate (ffmpeg >= 5.1).
    '-fps_mode',
    'passthrough',
    ...codec,
    '-f',
    'mjpeg',
    // Write each frame as soon as it is encoded rather than when ffmpeg's output buffer fills.
    '-flush_packets',
    '1',
    'pipe:1',
  ];
}

export class FfmpegFrameSource implements FrameSource {
  readonly description: string;
  private readonly options: FfmpegSourceOptions;
  private readonly args: string[];
  private readonly frameTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly queue: FrameQueue;
  private readonly splitter: MjpegSplitter;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private stderrTail = '';
  private received = 0;
  private state: 'new' | 'opening' | 'open' | 'closed' = 'new';
  private suspended = false;

  constructor(options: FfmpegSourceOptions) {
    this.options = options;
    this.description = options.description;
    this.args = ffmpegArgs(options);
    this.frameTimeoutMs = positive(options.frameTimeoutMs ?? 5000, 'frameTimeoutMs');
    this.startTimeoutMs = positive(options.startTimeoutMs ?? 15000, 'startTimeoutMs');
    this.queue = new FrameQueue(this.description, options.queueSize ?? 4);
    this.splitter = new MjpegSplitter({ maxFrameBytes: options.maxFrameBytes });
  }

  /** The ffmpeg arguments this source runs (for logs). */
  get commandLine(): readonly string[] {
    return this.args;
  }

  /** The ffmpeg child's pid while it runs (tests use it to check the child is gone). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async open(): Promise<void> {
    if (this.state !== 'new') throw new CameraError(this.description, 'failed', `open() called twice`);
    this.state = 'opening';
    const child = spawn(this.options.ffmpegPath ?? 'ffmpeg', this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    track(child);
    this.exited = new Promise<void>((resolve) => {
      child.once('close', (code, signal) => {
        liveChildren.delete(child);
        this.onExit(code, signal);
        resolve();
      });
      child.once('error', (err: NodeJS.ErrnoException) => {
        // Spawning failed (no ffmpeg); a running child's errors (e.g. a failed kill) need no handling here.
        if (child.pid !== undefined) return;
        liveChildren.delete(child);
        const msg = err.code === 'ENOENT' ? `ffmpeg not found (${this.options.ffmpegPath ?? 'ffmpeg'} on PATH): install Debian's ffmpeg package` : `cannot start ffmpeg: ${err.message}`;
        this.queue.stop(new CameraError(this.description, 'failed', msg, { cause: err }));
        resolve();
      });
    });
    child.stdout!.on('data', (chunk: Buffer) => this.onData(chunk));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-STDERR_KEEP);
    });

    try {
      // Peek at the first frame so that a missing or busy device fails open(), not some later nextFrame().
      const first = await this.queue.next(this.startTimeoutMs, 'first frame');
      this.queue.unshift(first);
    } catch (e) {
      await this.close();
      throw e;
    }
    if (this.state === 'opening') this.state = 'open';
  }

  nextFrame(timeoutMs: number = this.frameTimeoutMs): Promise<Frame> {
    if (this.state === 'new') return Promise.reject(new CameraError(this.description, 'failed', 'nextFrame() before open()'));
    return this.queue.next(timeoutMs);
  }

  frames(): AsyncIterable<Frame> {
    return iterateFrames(this);
  }

  stats(): FrameSourceStats {
    const s = this.splitter.stats;
    return { received: this.received, dropped: this.queue.dropped, oversize: s.oversize, corrupt: s.corrupt };
  }

  /**
   * Makes the camera go silent without closing: the ffmpeg child is stopped (SIGSTOP) and anything it had already
   * written is ignored, so the next nextFrame() times out. The virtual camera's stall fault; close() still works.
   */
  suspend(): void {
    this.suspended = true;
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGSTOP');
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return this.exited;
    this.state = 'closed';
    this.queue.stop(new CameraError(this.description, 'closed', 'the source was closed'), { discardQueued: true });
    const child = this.child;
    // SIGKILL also ends a SIGSTOPped child; ffmpeg has nothing to flush that we still want.
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await this.exited;
  }

  private onData(chunk: Buffer): void {
    if (this.suspended) return;
    for (const data of this.splitter.push(chunk)) {
      if (this.suspended) return;
      const frame: Frame = { data, mime: 'image/jpeg', seq: ++this.received, receivedAt: Date.now(), source: this.description };
      this.options.onFrame?.(frame);
      this.queue.push(frame);
    }
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.state === 'closed') return;
    const tail = stderrLines(this.stderrTail);
    const when = this.received === 0 ? ' before the first frame' : ` after ${this.received} frames`;
    const details = { exitCode: code, signal, stderr: tail };
    if (code === 0) {
      this.queue.stop(new CameraError(this.description, 'ended', `ffmpeg ended the stream${when}`, { details }));
    } else {
      const how = code !== null ? `exited with code ${code}` : `was killed by ${signal}`;
      const msg = `ffmpeg ${how}${when}${tail ? `: ${tail}` : ' (no error output)'}`;
      this.queue.stop(new CameraError(this.description, 'failed', msg, { details }));
    }
  }
}

/** The last few non-empty lines ffmpeg wrote to stderr, joined with " | " to fit one log line. */
export function stderrLines(text: string, max = STDERR_LINES): string {
  return text
    .split(/\r?\n|\r/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .slice(-max)
    .join(' | ');
}

function positive(value: number, name: string): number {
  if (!(value > 0) || !Number.isFinite(value)) throw new CameraConfigError(`${name} must be a positive number of milliseconds, got ${value}`);
  return value;
}

export interface V4l2SourceOptions extends FrameSourceTimingOptions {
  /** e.g. /dev/video0 */
  device: string;
  width?: number;
  height?: number;
  fps?: number;
  /** The device's pixel format to ask for. Default mjpeg (passed through untouched); others are re-encoded. */
  format?: string;
  quality?: number;
  ffmpegPath?: string;
}

/** A V4L2 camera through ffmpeg: `-f v4l2 -input_format mjpeg -video_size WxH -framerate N -i DEVICE`. */
export function v4l2Source(options: V4l2SourceOptions): FfmpegFrameSource {
  const { device, width, height, fps } = options;
  const format = options.format ?? 'mjpeg';
  if (!device) throw new CameraConfigError('v4l2 camera: no device given (e.g. /dev/video0)');
  if ((width === undefined) !== (height === undefined)) throw new CameraConfigError('v4l2 camera: give both width and height, or neither');
  for (const [name, v] of [['width', width], ['height', height], ['fps', fps]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v > 0 && v <= 16384)) throw new CameraConfigError(`v4l2 camera: ${name} must be a positive integer, got ${v}`);
  }
  if (!/^[a-z0-9_]+$/i.test(format)) throw new CameraConfigError(`v4l2 camera: bad pixel format "${format}"`);
  const inputArgs = [
    '-f',
    'v4l2',
    // Hand frames on as they come instead of buffering for stream analysis.
    '-fflags',
    'nobuffer',
    '-input_format',
    format,
    ...(width !== undefined ? ['-video_size', `${width}x${height}`] : []),
    ...(fps !== undefined ? ['-framerate', String(fps)] : []),
    '-i',
    device,
  ];
  return new FfmpegFrameSource({
    ...options,
    description: `v4l2:${device}`,
    inputArgs,
    copy: format === 'mjpeg',
  });
}
