/**
 * The counter screen's server: the kiosk serves its own screen on localhost to its own browser (kiosk mode). Plain
 * ES modules from device/ui/static (no build step), the live view state over server-sent events (/events), the
 * person's actions as small JSON POSTs (/api/...), and the camera preview as MJPEG (/preview.mjpg).
 *
 * Privacy: the preview is the only image that leaves the capture path, and it goes nowhere but this loopback
 * socket: the server listens on 127.0.0.1 only, refuses any peer that is not loopback and any Host header that
 * is not its own (DNS rebinding), keeps only the latest frame in memory while a capture runs, and wipes it when
 * the capture ends. The page's Content-Security-Policy allows nothing but this origin.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { BiokioskError } from '../../protocol/errors.ts';
import type { CounterScreen } from './controller.ts';

export const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
const MAX_BODY = 4096;
const BOUNDARY = 'biokioskframe';
const CSP = "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

function isLoopback(addr: string | undefined): boolean {
  return addr === '127.0.0.1' || addr === '::1' || addr === '::ffff:127.0.0.1';
}

export interface ScreenServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function serveScreen(screen: CounterScreen, o: { port?: number } = {}): Promise<ScreenServer> {
  const sse = new Set<ServerResponse>();
  const previews = new Set<ServerResponse>();
  let frame: Uint8Array | null = null;
  let port = 0;

  const onView = (v: unknown) => {
    const data = `data: ${JSON.stringify(v)}\n\n`;
    for (const r of sse) r.write(data);
  };
  const sendFrame = (r: ServerResponse, f: Uint8Array) => {
    r.write(`--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${f.byteLength}\r\n\r\n`);
    r.write(Buffer.from(f));
    r.write('\r\n');
  };
  const onPreview = (bytes: Uint8Array | null) => {
    frame?.fill(0);
    frame = bytes ? new Uint8Array(bytes) : null;
    if (!frame) return;
    for (const r of previews) sendFrame(r, frame);
  };
  screen.on('view', onView);
  screen.on('preview', onPreview);
  const heartbeat = setInterval(() => {
    for (const r of sse) r.write(': keep-alive\n\n');
  }, 15_000);
  heartbeat.unref();

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };

  const readJson = (req: IncomingMessage): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      let size = 0;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => {
        size += c.byteLength;
        if (size > MAX_BODY) {
          reject(new BiokioskError('BodyTooLarge', `a request body is at most ${MAX_BODY} bytes`));
          req.destroy();
        } else chunks.push(c);
      });
      req.on('end', () => {
        if (chunks.length === 0) return resolve({});
        try {
          const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
          resolve(v as Record<string, unknown>);
        } catch {
          reject(new BiokioskError('BadJson', 'the request body is not a JSON object'));
        }
      });
      req.on('error', reject);
    });

  const str = (v: unknown, name: string): string => {
    if (typeof v !== 'string') throw new BiokioskError('BadRequest', `${name} must be a string`);
    return v;
  };

  const actions: Record<string, (b: Record<string, unknown>) => unknown> = {
    start: (b) => screen.start(str(b['subject'], 'subject')),
    consent: (b) => {
      if (typeof b['accepted'] !== 'boolean') throw new BiokioskError('BadRequest', 'accepted must be true or false');
      screen.consent(b['accepted']);
    },
    counter: () => screen.counter(),
    continue: () => screen.continue(),
    lang: (b) => screen.setLanguage(str(b['lang'], 'lang')),
    scenario: (b) => screen.setScenario(str(b['scenario'], 'scenario')),
    override: (b) => screen.override({ reason: str(b['reason'], 'reason'), staff: str(b['staff'], 'staff') }),
    reset: () => screen.reset(),
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (!isLoopback(req.socket.remoteAddress)) return send(res, 403, { ok: false, error: { code: 'NotLocal', message: 'the screen is served to this kiosk only' } });
    const host = req.headers.host ?? '';
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) return send(res, 421, { ok: false, error: { code: 'BadHost', message: 'unexpected Host header' } });
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    if (req.method === 'GET' && url.pathname === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(`retry: 500\ndata: ${JSON.stringify(screen.state)}\n\n`);
      sse.add(res);
      req.on('close', () => sse.delete(res));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/preview.mjpg') {
      res.writeHead(200, { 'content-type': `multipart/x-mixed-replace; boundary=${BOUNDARY}`, 'cache-control': 'no-store' });
      // The stream is open before the first frame (no capture may be running yet).
      res.flushHeaders();
      previews.add(res);
      // A preview opened mid-capture starts from the latest frame (sent as is: onPreview would wipe it first).
      if (frame) sendFrame(res, frame);
      req.on('close', () => previews.delete(res));
      return;
    }
    if (req.method === 'POST' && url.pathname.startsWith('/api/')) {
      const action = actions[url.pathname.slice(5)];
      if (!action) return send(res, 404, { ok: false, error: { code: 'NoSuchAction', message: `no action ${url.pathname.slice(5, 40)}` } });
      try {
        await action(await readJson(req));
        return send(res, 200, { ok: true });
      } catch (e) {
        const err = e instanceof BiokioskError ? e : new BiokioskError('Internal', (e as Error).message, { kind: 'internal' });
        return send(res, err.kind === 'input' ? 400 : 500, { ok: false, error: { code: err.code, message: err.message } });
      }
    }
    if (req.method === 'GET') {
      const rel = url.pathname === '/' ? 'index.html' : url.pathname.replace(/^\/static\//, '');
      const path = normalize(join(STATIC_DIR, rel));
      const type = TYPES[extname(path)];
      if (!path.startsWith(STATIC_DIR) || !type) return send(res, 404, { ok: false, error: { code: 'NotFound', message: 'not found' } });
      try {
        const body = await readFile(path);
        res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache', 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' });
        return res.end(body);
      } catch {
        return send(res, 404, { ok: false, error: { code: 'NotFound', message: 'not found' } });
      }
    }
    send(res, 405, { ok: false, error: { code: 'MethodNotAllowed', message: `${req.method} is not served here` } });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, { ok: false, error: { code: 'Internal', message: 'internal error' } });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new BiokioskError('ScreenPortInUse', `cannot serve the screen on 127.0.0.1:${o.port ?? 0}: ${e.code ?? e.message}`)));
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    async close() {
      clearInterval(heartbeat);
      screen.off('view', onView);
      screen.off('preview', onPreview);
      frame?.fill(0);
      frame = null;
      for (const r of [...sse, ...previews]) r.end();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
    },
  };
}
