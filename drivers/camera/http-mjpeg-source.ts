/**
 * MJPEG over HTTP, as IP cameras serve it: one long GET whose body is `multipart/x-mixed-replace`, one JPEG per
 * part. Basic auth comes from the URL's user:password (never shown in descriptions or errors).
 */
import http from 'node:http';
import https from 'node:https';
import { FrameQueue } from './frame-queue.ts';
import type { FrameSourceTimingOptions } from './ffmpeg-source.ts';
import { MultipartParser, multipartBoundary } from './multipart.ts';
import { CameraConfigError, CameraError, iterateFrames, type Frame, type FrameSource, type FrameSourceStats } from './types.ts';

export interface HttpMjpegSourceOptions extends FrameSourceTimingOptions {
  /** http:// or https:// URL of the MJPEG stream. */
  url: string;
  /** Same as frameTimeoutMs: how long nextFrame() waits by default. */
  timeoutMs?: number;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Set false for a camera with a self-signed certificate. Default true. */
  rejectUnauthorized?: boolean;
}

/** The URL without credentials or query (which may carry tokens), for messages. */
export function describeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

export class HttpMjpegFrameSource implements FrameSource {
  readonly description: string;
  private readonly url: URL;
  private readonly options: HttpMjpegSourceOptions;
  private readonly frameTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly maxFrameBytes: number | undefined;
  private readonly queue: FrameQueue;
  private request: http.ClientRequest | null = null;
  private parser: MultipartParser | null = null;
  private received = 0;
  private corrupt = 0;
  private state: 'new' | 'open' | 'closed' = 'new';

  constructor(options: HttpMjpegSourceOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new CameraConfigError(`MJPEG camera: not a URL: ${JSON.stringify(options.url)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CameraConfigError(`MJPEG camera: URL must be http:// or https://, got ${url.protocol}`);
    this.url = url;
    this.options = options;
    this.description = describeUrl(url);
    this.frameTimeoutMs = options.timeoutMs ?? options.frameTimeoutMs ?? 5000;
    this.startTimeoutMs = options.startTimeoutMs ?? 15000;
    for (const [name, v] of [['timeoutMs', this.frameTimeoutMs], ['startTimeoutMs', this.startTimeoutMs]] as const) {
      if (!(v > 0 && Number.isFinite(v))) throw new CameraConfigError(`MJPEG camera: ${name} must be a positive number of milliseconds, got ${v}`);
    }
    this.maxFrameBytes = options.maxFrameBytes;
    this.queue = new FrameQueue(this.description, options.queueSize ?? 4);
  }

  async open(): Promise<void> {
    if (this.state !== 'new') throw new CameraError(this.description, 'failed', 'open() called twice');
    this.state = 'open';
    const url = this.url;
    const auth = url.username || url.password ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined;
    const get = url.protocol === 'https:' ? https.get : http.get;
    const target = new URL(url.href);
    target.username = '';
    target.password = '';
    const req = get(target, {
      auth,
      headers: { accept: 'multipart/x-mixed-replace, image/jpeg;q=0.5', ...this.options.headers },
      rejectUnauthorized: this.options.rejectUnauthorized ?? true,
    });
    this.request = req;
    req.on('error', (err) => this.fail(`cannot connect: ${err.message}`, err));
    req.on('response', (res) => this.onResponse(res));

    try {
      const first = await this.queue.next(this.startTimeoutMs, 'first frame');
      this.queue.unshift(first);
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  nextFrame(timeoutMs: number = this.frameTimeoutMs): Promise<Frame> {
    if (this.state === 'new') return Promise.reject(new CameraError(this.description, 'failed', 'nextFrame() before open()'));
    return this.queue.next(timeoutMs);
  }

  frames(): AsyncIterable<Frame> {
    return iterateFrames(this);
  }

  stats(): FrameSourceStats {
    return { received: this.received, dropped: this.queue.dropped, oversize: this.parser?.stats.oversize ?? 0, corrupt: this.corrupt + (this.parser?.stats.badHeaders ?? 0) };
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.queue.stop(new CameraError(this.description, 'closed', 'the source was closed'), { discardQueued: true });
    this.request?.destroy();
  }

  private onResponse(res: http.IncomingMessage): void {
    const status = res.statusCode ?? 0;
    const type = res.headers['content-type'];
    if (status !== 200) {
      res.resume();
      this.fail(`HTTP ${status} ${res.statusMessage ?? ''}`.trimEnd(), undefined, { status });
      return;
    }
    const boundary = multipartBoundary(type);
    if (boundary === null) {
      res.resume();
      this.fail(`expected an MJPEG stream (multipart/x-mixed-replace with a boundary), got Content-Type ${JSON.stringify(type ?? '')}`, undefined, {
        contentType: type,
      });
      return;
    }
    const parser = new MultipartParser(boundary, { maxPartBytes: this.maxFrameBytes });
    this.parser = parser;
    res.on('data', (chunk: Buffer) => {
      for (const part of parser.push(chunk)) this.onPart(part.headers, part.body);
      if (parser.done) this.end('the camera sent the closing boundary');
    });
    res.on('end', () => this.end('the camera closed the stream'));
    res.on('error', (err) => this.fail(`stream broken: ${err.message}`, err));
    res.on('aborted', () => this.fail('stream aborted by the camera'));
  }

  private onPart(headers: Record<string, string>, body: Buffer): void {
    const mime = (headers['content-type'] ?? 'image/jpeg').split(';')[0]!.trim().toLowerCase();
    // Only images are frames; a JPEG must at least start like one (cameras sometimes send empty parts).
    if (!mime.startsWith('image/') || (mime === 'image/jpeg' && !(body.length > 4 && body[0] === 0xff && body[1] === 0xd8))) {
      this.corrupt++;
      return;
    }
    this.queue.push({ data: body, mime, seq: ++this.received, receivedAt: Date.now(), source: this.description });
  }

  private end(message: string): void {
    if (this.state === 'closed') return;
    this.queue.stop(new CameraError(this.description, 'ended', `${message} after ${this.received} frames`));
    this.request?.destroy();
  }

  private fail(message: string, cause?: unknown, details?: Record<string, unknown>): void {
    if (this.state === 'closed') return;
    this.queue.stop(new CameraError(this.description, 'failed', message, { cause, details }));
    this.request?.destroy();
  }
}

/** A camera streaming MJPEG over HTTP(S); call open() before reading frames. */
export function httpMjpegSource(options: HttpMjpegSourceOptions): HttpMjpegFrameSource {
  return new HttpMjpegFrameSource(options);
}
