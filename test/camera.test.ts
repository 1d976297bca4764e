/**
 * Camera sources against the real things: Debian's ffmpeg (the virtual camera and a bad V4L2 device) and a real
 * HTTP server on loopback streaming MJPEG. No mocks. Fails (never skips) when ffmpeg is missing.
 */
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp as mkdtempRaw, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CameraConfigError,
  CameraError,
  CameraTimeoutError,
  DirectoryFrameSource,
  httpMjpegSource,
  openFrameSource,
  parseFrameSourceSpec,
  v4l2Source,
  virtualCamera,
  type Frame,
  type FrameSource,
} from '../drivers/camera/index.ts';
import { sample, samplePath, SAMPLE_NUMBERS } from './helpers/fixtures.ts';

/** ffmpeg processes that are children of this (vitest worker) process: must be none once a test is done. */
function childFfmpegs(): Array<{ pid: number; state: string }> {
  const out: Array<{ pid: number; state: string }> = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const m = /^\d+ \((.*)\) (\S) (\d+)/.exec(stat);
    if (m && m[1] === 'ffmpeg' && Number(m[3]) === process.pid) out.push({ pid: Number(d), state: m[2]! });
  }
  return out;
}

function processState(pid: number): string | null {
  try {
    return /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

async function take(source: FrameSource, n: number): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const f of source.frames()) {
    frames.push(f);
    if (frames.length === n) break;
  }
  return frames;
}

async function all(source: FrameSource): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const f of source.frames()) frames.push(f);
  return frames;
}

/** Runs fn with the source, closing it whatever happens (no orphan ffmpeg, no open socket). */
async function withSource<S extends FrameSource, T>(source: S, fn: (s: S) => Promise<T>): Promise<T> {
  try {
    return await fn(source);
  } finally {
    await source.close();
  }
}

/** Temporary folders made by the tests, removed at the end. */
const tempDirs: string[] = [];
async function mkdtemp(prefix: string): Promise<string> {
  const dir = await mkdtempRaw(prefix);
  tempDirs.push(dir);
  return dir;
}

/** A folder with a JPEG, a PNG and a WebP of different sizes, plus a file that is not an image. */
async function mixedFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bk-cam-'));
  await copyFile(samplePath(2), join(dir, 'a-photo.jpg'));
  await sharp({ create: { width: 200, height: 100, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toFile(join(dir, 'b-red.png'));
  await sharp({ create: { width: 90, height: 160, channels: 3, background: { r: 30, g: 30, b: 200 } } }).webp().toFile(join(dir, 'c-blue.webp'));
  await writeFile(join(dir, 'readme.txt'), 'not an image');
  return dir;
}

const FFMPEG_MISSING =
  'ffmpeg is not installed (or not on PATH): the camera tests drive the real Debian ffmpeg. Run `npm test` (scripts/test-env.mjs installs it as root) or apt-get install ffmpeg';

describe('camera sources', () => {
  // Checked before each test (not once in beforeAll, whose failure reports the tests as skipped): every test
  // fails with the message when ffmpeg is missing.
  let ffmpegFound: boolean | undefined;
  beforeEach(() => {
    if (ffmpegFound === undefined) {
      const r = spawnSync('ffmpeg', ['-hide_banner', '-version'], { encoding: 'utf8' });
      ffmpegFound = !r.error && r.status === 0;
    }
    if (!ffmpegFound) throw new Error(FFMPEG_MISSING);
  });

  afterAll(async () => {
    for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
    expect(childFfmpegs(), 'ffmpeg children left running').toEqual([]);
  });

  describe('virtual camera (fixture images through the ffmpeg MJPEG pipe)', () => {
    it('delivers decodable frames of the requested size at the requested rate, looping', async () => {
      const cam = virtualCamera({ images: SAMPLE_NUMBERS.map(samplePath), fps: 25, width: 320, height: 240 });
      const frames = await withSource(cam, async () => {
        await cam.open();
        expect(cam.pid).toBeGreaterThan(0);
        return take(cam, 8); // more than the 6 images: the loop comes round
      });
      expect(frames.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      for (const f of frames) {
        expect(f).toMatchObject({ mime: 'image/jpeg', source: 'virtual:6 images' });
        const { info } = await sharp(f.data).raw().toBuffer({ resolveWithObject: true });
        expect(info).toMatchObject({ width: 320, height: 240 });
      }
      // Paced in real time (7 intervals of 40 ms), not dumped as fast as ffmpeg can encode.
      expect(frames[7]!.receivedAt - frames[0]!.receivedAt).toBeGreaterThanOrEqual(200);
      expect(childFfmpegs()).toEqual([]);
    });

    it('plays a folder of mixed formats and sizes once, then ends', async () => {
      const dir = await mixedFolder();
      const cam = virtualCamera({ images: dir, fps: 30, width: 160, height: 120, loop: false });
      await withSource(cam, async () => {
        await cam.open();
        const frames = await all(cam);
        expect(frames).toHaveLength(3);
        for (const f of frames) expect(await sharp(f.data).metadata()).toMatchObject({ format: 'jpeg', width: 160, height: 120 });
        // The red PNG, letterboxed: the centre pixel is red.
        const { data } = await sharp(frames[1]!.data).extract({ left: 80, top: 60, width: 1, height: 1 }).raw().toBuffer({ resolveWithObject: true });
        expect(data[0]!).toBeGreaterThan(150);
        expect(data[2]!).toBeLessThan(80);
        const end = await cam.nextFrame(1000).catch((e: unknown) => e);
        expect(end).toBeInstanceOf(CameraError);
        expect((end as CameraError).reason).toBe('ended');
      });
    });

    it('stall fault: after N frames the camera goes silent and nextFrame times out (no hang)', async () => {
      const cam = virtualCamera({ images: [samplePath(1), samplePath(3)], fps: 20, width: 160, height: 120, stallAfterFrames: 3, frameTimeoutMs: 400 });
      await withSource(cam, async () => {
        await cam.open();
        const frames = await take(cam, 3);
        expect(frames.map((f) => f.seq)).toEqual([1, 2, 3]);
        const t0 = Date.now();
        const err = await cam.nextFrame().catch((e: unknown) => e);
        const waited = Date.now() - t0;
        expect(err).toBeInstanceOf(CameraTimeoutError);
        expect(err).toMatchObject({ code: 'CameraTimeout', kind: 'internal' });
        expect((err as Error).message).toBe(`camera virtual:2 images: no frame within 400 ms`);
        expect(waited).toBeGreaterThanOrEqual(380);
        expect(waited).toBeLessThan(2000);
        // The pipe is still open: ffmpeg is stopped, not gone. A second wait times out too.
        expect(processState(cam.pid!)).toBe('T');
        await expect(cam.nextFrame(100)).rejects.toBeInstanceOf(CameraTimeoutError);
        // frames() surfaces the timeout rather than ending quietly.
        await expect(take(cam, 1)).rejects.toBeInstanceOf(CameraTimeoutError);
      });
      expect(childFfmpegs()).toEqual([]);
    });

    it('drops the oldest frames when the consumer is slow, and counts them', async () => {
      const cam = virtualCamera({ images: [samplePath(4)], fps: 60, width: 64, height: 48, queueSize: 2 });
      await withSource(cam, async () => {
        await cam.open();
        await new Promise((r) => setTimeout(r, 500));
        const [a, b] = [await cam.nextFrame(), await cam.nextFrame()];
        const stats = cam.stats();
        expect(stats.dropped).toBeGreaterThan(5);
        expect(stats.received).toBeGreaterThanOrEqual(stats.dropped + 2);
        expect(b!.seq).toBe(a!.seq + 1);
        expect(a!.seq).toBeGreaterThan(5); // the queue kept recent frames, not the first ones
      });
    });
  });

  describe('ffmpeg failures', () => {
    it('a V4L2 device that does not exist fails open() with ffmpeg\'s own message', async () => {
      const cam = v4l2Source({ device: '/dev/biokiosk-no-such-camera', width: 640, height: 480, fps: 15, startTimeoutMs: 10_000 });
      expect(cam.commandLine).toEqual(expect.arrayContaining(['-f', 'v4l2', '-input_format', 'mjpeg', '-video_size', '640x480', '-framerate', '15', '-i', '/dev/biokiosk-no-such-camera', '-c:v', 'copy']));
      const t0 = Date.now();
      const err = await cam.open().catch((e: unknown) => e);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(err).toBeInstanceOf(CameraError);
      expect(err).toMatchObject({ code: 'CameraError', reason: 'failed' });
      expect((err as Error).message).toMatch(/^camera v4l2:\/dev\/biokiosk-no-such-camera: ffmpeg exited with code \d+ before the first frame: .*No such file or directory/);
      expect((err as CameraError).details?.stderr).toMatch(/biokiosk-no-such-camera/);
      await cam.close();
    });

    it('a missing ffmpeg binary is a clear error', async () => {
      const cam = virtualCamera({ images: [samplePath(1)], ffmpegPath: '/nonexistent/bin/ffmpeg' });
      await expect(cam.open()).rejects.toThrow(/ffmpeg not found \(\/nonexistent\/bin\/ffmpeg on PATH\)/);
      await cam.close();
    });

    it('an image ffmpeg cannot read fails with its stderr', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'bk-cam-'));
      await writeFile(join(dir, 'broken.jpg'), 'this is not a jpeg');
      const err = await withSource(virtualCamera({ images: [join(dir, 'broken.jpg')] }), (cam) => cam.open()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CameraError);
      expect((err as Error).message).toMatch(/ffmpeg exited with code \d+ before the first frame: ./);
    });
  });

  describe('MJPEG over HTTP', () => {
    interface StreamPlan {
      frames: Buffer[];
      /** After the frames: send the closing boundary, or stall with the connection open. */
      then: 'close' | 'stall';
      intervalMs?: number;
      /** Content-Length on every part, or on every other one (as different cameras do). */
      lengths: 'all' | 'alternate';
    }

    const servers: http.Server[] = [];
    afterAll(async () => {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise((r) => s.close(r));
      }
    });

    /** A real HTTP server on 127.0.0.1 (free port) running handler; returns its base URL. */
    async function serve(handler: http.RequestListener): Promise<string> {
      const server = http.createServer(handler);
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }

    function mjpegHandler(plan: StreamPlan, seen: { auth?: string } = {}): http.RequestListener {
      return (req, res) => {
        seen.auth = req.headers.authorization;
        res.writeHead(200, { 'Content-Type': 'multipart/x-mixed-replace; boundary=kioskframe', 'Cache-Control': 'no-cache' });
        let i = 0;
        const timer = setInterval(() => {
          if (i < plan.frames.length) {
            const f = plan.frames[i]!;
            const length = plan.lengths === 'all' || i % 2 === 0 ? `Content-Length: ${f.length}\r\n` : '';
            res.write(`--kioskframe\r\nContent-Type: image/jpeg\r\n${length}\r\n`);
            res.write(f);
            res.write('\r\n');
            i++;
            return;
          }
          clearInterval(timer);
          if (plan.then === 'close') res.end('--kioskframe--\r\n');
        }, plan.intervalMs ?? 20);
        res.on('close', () => clearInterval(timer));
      };
    }

    it('streams the fixture frames byte for byte, with basic auth from the URL kept out of messages', async () => {
      const photos = SAMPLE_NUMBERS.map((i) => sample(i));
      const seen: { auth?: string } = {};
      const base = await serve(mjpegHandler({ frames: photos, then: 'close', lengths: 'alternate' }, seen));
      const url = base.replace('http://', 'http://kiosk:s3cret@') + '/video.mjpg?token=abc';
      const cam = httpMjpegSource({ url, timeoutMs: 2000, queueSize: 16 });
      expect(cam.description).toBe(`${base}/video.mjpg`);
      const frames = await withSource(cam, async () => {
        await cam.open();
        return all(cam); // ends at the closing boundary
      });
      expect(seen.auth).toBe(`Basic ${Buffer.from('kiosk:s3cret').toString('base64')}`);
      expect(frames).toHaveLength(photos.length);
      frames.forEach((f, i) => {
        expect(f.data.equals(photos[i]!), `frame ${i}`).toBe(true);
        expect(f).toMatchObject({ mime: 'image/jpeg', seq: i + 1, source: `${base}/video.mjpg` });
      });
      expect((await sharp(frames[0]!.data).metadata()).width).toBe(1920);
    });

    it('a camera that stops sending gives CameraTimeoutError, not a hang', async () => {
      // With Content-Length (a part without one only ends at the next boundary, which a stalled camera never sends).
      const base = await serve(mjpegHandler({ frames: [sample(1), sample(2)], then: 'stall', lengths: 'all' }));
      const cam = httpMjpegSource({ url: `${base}/stream`, timeoutMs: 300 });
      await withSource(cam, async () => {
        await cam.open();
        expect((await take(cam, 2)).map((f) => f.seq)).toEqual([1, 2]);
        const t0 = Date.now();
        const err = await cam.nextFrame().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(CameraTimeoutError);
        expect((err as Error).message).toBe(`camera ${base}/stream: no frame within 300 ms`);
        expect(Date.now() - t0).toBeLessThan(2000);
      });
    });

    it('refuses a non-200 answer, a non-multipart stream and a refused connection clearly', async () => {
      const base = await serve((req, res) => {
        if (req.url === '/missing') {
          res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no');
        } else {
          res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end('<html>login</html>');
        }
      });
      const notFound = await withSource(httpMjpegSource({ url: `${base}/missing` }), (c) => c.open()).catch((e: unknown) => e);
      expect(notFound).toBeInstanceOf(CameraError);
      expect((notFound as Error).message).toBe(`camera ${base}/missing: HTTP 404 Not Found`);
      const html = await withSource(httpMjpegSource({ url: `${base}/index.html` }), (c) => c.open()).catch((e: unknown) => e);
      expect((html as Error).message).toMatch(/expected an MJPEG stream \(multipart\/x-mixed-replace with a boundary\), got Content-Type "text\/html; charset=utf-8"/);

      // A port nobody listens on (a server that was started and closed).
      const gone = http.createServer();
      await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
      const port = (gone.address() as AddressInfo).port;
      await new Promise((r) => gone.close(r));
      await expect(withSource(httpMjpegSource({ url: `http://127.0.0.1:${port}/` }), (c) => c.open())).rejects.toThrow(/cannot connect: .*ECONNREFUSED/);
    });
  });

  describe('directory source', () => {
    it('yields the folder\'s images in natural name order with their MIME types, once or looping', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'bk-dir-'));
      await copyFile(samplePath(1), join(dir, 'img10.jpg'));
      await sharp({ create: { width: 8, height: 8, channels: 3, background: '#00ff00' } }).png().toFile(join(dir, 'img2.png'));
      await copyFile(samplePath(5), join(dir, 'img1.JPEG'));
      await writeFile(join(dir, 'notes.txt'), 'x');
      await mkdir(join(dir, 'folder.jpg'));

      const once = new DirectoryFrameSource({ dir });
      const frames = await withSource(once, async () => {
        await once.open();
        return all(once);
      });
      expect(frames.map((f) => [f.seq, f.mime])).toEqual([
        [1, 'image/jpeg'],
        [2, 'image/png'],
        [3, 'image/jpeg'],
      ]);
      expect(frames[0]!.data.equals(sample(5))).toBe(true);
      expect(frames[2]!.data.equals(sample(1))).toBe(true);

      const looping = new DirectoryFrameSource({ dir, loop: true });
      await withSource(looping, async () => {
        await looping.open();
        const five = await take(looping, 5);
        expect(five.map((f) => f.mime)).toEqual(['image/jpeg', 'image/png', 'image/jpeg', 'image/jpeg', 'image/png']);
      });

      const emptyDir = await mkdtemp(join(tmpdir(), 'bk-dir-'));
      await expect(new DirectoryFrameSource({ dir: emptyDir }).open()).rejects.toMatchObject({ code: 'BadCameraConfig', kind: 'input' });
    });
  });

  describe('openFrameSource settings', () => {
    it('parses the setting forms', () => {
      expect(parseFrameSourceSpec('v4l2:/dev/video0?width=640&height=480&fps=15')).toEqual({ kind: 'v4l2', device: '/dev/video0', width: 640, height: 480, fps: 15 });
      expect(parseFrameSourceSpec('v4l2:///dev/video2?format=yuyv422')).toEqual({ kind: 'v4l2', device: '/dev/video2', format: 'yuyv422' });
      expect(parseFrameSourceSpec('http://cam.local:8080/mjpeg?res=hd')).toEqual({ kind: 'http', url: 'http://cam.local:8080/mjpeg?res=hd' });
      expect(parseFrameSourceSpec('HTTPS://cam/x')).toEqual({ kind: 'http', url: 'https://cam/x' });
      expect(parseFrameSourceSpec('dir:/srv/enrol?loop=1&fps=2.5')).toEqual({ kind: 'dir', path: '/srv/enrol', loop: true, fps: 2.5 });
      expect(parseFrameSourceSpec('dir:relative/images')).toEqual({ kind: 'dir', path: 'relative/images', loop: false });
      expect(parseFrameSourceSpec('virtual:/fixtures?fps=10&loop=false&width=320&height=240&stallAfter=5')).toEqual({
        kind: 'virtual',
        path: '/fixtures',
        fps: 10,
        loop: false,
        width: 320,
        height: 240,
        stallAfterFrames: 5,
      });
    });

    it('rejects bad settings with an input error naming what was wrong', async () => {
      const cases: Array<[string, RegExp]> = [
        ['', /no scheme; expected one of v4l2: http: https: dir: virtual:/],
        ['/dev/video0', /no scheme/],
        ['rtsp://cam/stream', /unknown scheme "rtsp:"/],
        ['v4l2:', /no device path \(e\.g\. v4l2:\/dev\/video0\)/],
        ['v4l2:/dev/video0?width=640', /give both width and height, or neither/],
        ['v4l2:/dev/video0?width=wide&height=480', /width must be an integer from 1 to 16384, got "wide"/],
        ['v4l2:/dev/video0?fps=15&fps=30', /parameter "fps" given twice/],
        ['v4l2:/dev/video0?colour=red', /unknown parameter "colour" for v4l2: \(allowed: width, height, fps, format\)/],
        ['v4l2:/dev/video0?format=mjpeg;rm', /format must be a pixel format name/],
        ['dir:/srv/enrol?loop=maybe', /loop must be 1\/true\/yes or 0\/false\/no, got "maybe"/],
        ['dir:', /no path/],
        ['virtual:/fixtures?width=641&height=480', /width and height must be even/],
        ['virtual:/fixtures?fps=0', /fps must be a number from 0\.001 to 240, got "0"/],
        ['http://', /not a valid URL/],
      ];
      for (const [spec, message] of cases) {
        let err: unknown;
        try {
          parseFrameSourceSpec(spec);
        } catch (e) {
          err = e;
        }
        expect(err, spec).toBeInstanceOf(CameraConfigError);
        expect(err, spec).toMatchObject({ code: 'BadCameraConfig', kind: 'input' });
        expect((err as Error).message, spec).toMatch(message);
        expect((err as Error).message, spec).toContain(`camera setting ${JSON.stringify(spec)}`);
      }
      await expect(openFrameSource('v4l2:/dev/video0?fps=fast')).rejects.toMatchObject({ kind: 'input', code: 'BadCameraConfig' });
      await expect(openFrameSource(`dir:${join(tmpdir(), 'bk-no-such-folder')}`)).rejects.toThrow(/no such folder/);
    });

    it('opens a virtual camera and a folder from settings', async () => {
      const dir = await mixedFolder();
      const cam = await openFrameSource(`virtual:${dir}?fps=30&width=96&height=64&loop=0`, { frameTimeoutMs: 3000 });
      const frames = await withSource(cam, () => all(cam));
      expect(frames).toHaveLength(3);
      for (const f of frames) expect(await sharp(f.data).metadata()).toMatchObject({ width: 96, height: 64 });

      const folder = await openFrameSource(`dir:${dir}`);
      expect((await withSource(folder, () => all(folder))).map((f) => f.mime)).toEqual(['image/jpeg', 'image/png', 'image/webp']);
      expect(childFfmpegs()).toEqual([]);
    });
  });
});
