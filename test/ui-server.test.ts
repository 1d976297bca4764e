/**
 * The counter screen's server (device/ui/server.ts) over real HTTP: what it serves and to whom (loopback only,
 * its own Host only, a CSP that allows nothing but itself, nothing outside static/), the actions and their errors,
 * the live state over server-sent events, and the camera preview (the latest frame only, wiped when the capture
 * ends). A kiosk from the one factory on mosquitto; the browser flows are in ui.test.ts.
 */
import { request } from 'node:http';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CameraCaptureDevice } from '../device/capture/camera.ts';
import { CounterScreen, type ViewState } from '../device/ui/controller.ts';
import { serveScreen, type ScreenServer } from '../device/ui/server.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import { startKiosk, tempDir, type TestKiosk } from './helpers/e2e.ts';
import { samplePath } from './helpers/fixtures.ts';
import { Mosquitto } from './helpers/mosquitto.ts';

let broker: Mosquitto;
let v: VerifierInstance;
let k: TestKiosk;
let screen: CounterScreen;
let server: ScreenServer;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTP exchange with the screen, with any Host header and body. */
function http(method: string, path: string, o: { host?: string; body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method, path, headers: { host: o.host ?? `127.0.0.1:${server.port}`, ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** A streaming GET: the bytes received until `until` says enough (or the time runs out), then the socket closes. */
function stream(path: string, until: (received: Buffer) => boolean, ms = 5000): Promise<{ headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    let headers: Record<string, unknown> = {};
    let body = Buffer.alloc(0);
    const done = () => {
      clearTimeout(timer);
      req.destroy();
      resolve({ headers, body });
    };
    const timer = setTimeout(done, ms);
    const req = request({ host: '127.0.0.1', port: server.port, path, headers: { host: `127.0.0.1:${server.port}` } }, (res) => {
      headers = res.headers;
      res.on('data', (c: Buffer) => {
        body = Buffer.concat([body, c]);
        if (until(body)) done();
      });
    });
    req.on('error', (e) => (e.message.includes('socket hang up') ? undefined : reject(e)));
    req.end();
  });
}

const json = (r: Reply) => JSON.parse(r.body.toString('utf8')) as { ok: boolean; error?: { code: string } };

beforeAll(async () => {
  const dir = await tempDir('bk-ui-server-');
  broker = await Mosquitto.start();
  v = await openVerifier(join(dir, 'verifier'), { allowedModels: [] });
  // The session stops at the consent question here: the camera is never started.
  k = await startKiosk(broker.url, v, 'kiosk-ui-server', { capture: [{ modality: 'face', device: new CameraCaptureDevice(`virtual:${samplePath(2)}?fps=5`) }], policy: { nonce: 'never', consent: 'required' } });
  screen = new CounterScreen(k.kiosk, { siteKind: 'pharmacy' });
  server = await serveScreen(screen);
});

afterAll(async () => {
  await server?.close();
  await screen?.close();
  await k?.stop();
  await v?.close();
  await broker?.stop();
});

describe('the screen server', () => {
  it('serves the page to its own origin only, with a CSP that allows nothing else, and nothing outside static/', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await http('GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.body.toString()).toContain('<script type="module" src="/static/app.js">');
    expect((await http('GET', '/static/i18n.js')).headers['content-type']).toBe('text/javascript; charset=utf-8');
    // DNS rebinding: a page on another name that resolves here is refused.
    expect((await http('GET', '/', { host: `evil.example:${server.port}` })).status).toBe(421);
    expect((await http('GET', '/', { host: `localhost:${server.port}` })).status).toBe(200);
    for (const path of ['/static/../server.ts', '/%2e%2e/controller.ts', '/static/../../../../bin/biokiosk.js', '/..%2f..%2f..%2f..%2fbin%2fbiokiosk.js', '/nothing.html']) expect((await http('GET', path)).status, path).toBe(404);
    expect((await http('DELETE', '/')).status).toBe(405);
  });

  it('takes actions as small JSON bodies and names what was wrong', async () => {
    expect(json(await http('POST', '/api/nope', { body: '{}' }))).toMatchObject({ ok: false, error: { code: 'NoSuchAction' } });
    const notJson = await http('POST', '/api/lang', { body: '{"lang":' });
    expect([notJson.status, json(notJson).error?.code]).toEqual([400, 'BadJson']);
    const big = await http('POST', '/api/start', { body: JSON.stringify({ subject: 'x'.repeat(5000) }) }).catch((e: Error) => e);
    // Too large: refused with its code, or the socket cut while the body was still coming.
    if (!(big instanceof Error)) expect([big.status, json(big).error?.code]).toEqual([400, 'BodyTooLarge']);
    expect(screen.state.subject).toBeNull();
    expect(json(await http('POST', '/api/lang', { body: '{"lang":"fr"}' }))).toMatchObject({ ok: false, error: { code: 'BadLanguage' } });
    expect(json(await http('POST', '/api/scenario', { body: '{"scenario":"space_travel"}' }))).toMatchObject({ ok: false, error: { code: 'BadScenario' } });
    expect(json(await http('POST', '/api/start', { body: '{"subject":"  "}' }))).toMatchObject({ ok: false, error: { code: 'BadSubject' } });
    expect(json(await http('POST', '/api/consent', { body: '{"accepted":true}' }))).toMatchObject({ ok: false, error: { code: 'NotAskingConsent' } });
    expect(json(await http('POST', '/api/override', { body: '{"reason":"id_document_checked","staff":"p-1"}' }))).toMatchObject({ ok: false, error: { code: 'NothingToOverride' } });
    expect(screen.state.screen).toBe('start');
  });

  it('sends the live state over server-sent events: the current one first, then each change', async () => {
    const views = (b: Buffer): ViewState[] => [...b.toString('utf8').matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!) as ViewState);
    // Once the stream has given the current state, the actions: a service picked, then a subject.
    let acted: Promise<Array<{ ok: boolean }>> | null = null;
    const act = async () => [json(await http('POST', '/api/scenario', { body: '{"scenario":"prescription"}' })), json(await http('POST', '/api/start', { body: '{"subject":"alice"}' }))];
    const { headers, body } = await stream(
      '/events',
      (b) => {
        if (!acted && views(b).length > 0) acted = act();
        return views(b).some((x) => x.screen === 'consent');
      },
      15_000,
    );
    expect((await acted!).map((r) => r.ok)).toEqual([true, true]);
    expect(headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const seen = views(body);
    expect(seen[0]).toMatchObject({ screen: 'start', scenario: 'otc_pickup', role: 'pharmacist' });
    expect(seen.find((x) => x.scenario === 'prescription')).toBeDefined();
    expect(seen.at(-1)).toMatchObject({ screen: 'consent', subject: 'alice', consent: { purpose: 'prescription', text: 'consent-biometric/1' } });
    // Versions only grow (the page drops stale copies).
    const versions = seen.map((x) => x.version);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(json(await http('POST', '/api/reset', { body: '{}' })).ok).toBe(true);
    expect(screen.state.screen).toBe('start');
  });

  it('streams the camera preview as MJPEG: a late viewer gets the latest frame intact; nothing once the capture ends', async () => {
    const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 30 } } }).jpeg().toBuffer();
    screen.emit('preview', new Uint8Array(jpeg));
    const late = await stream('/preview.mjpg', (b) => b.includes(jpeg.subarray(jpeg.length - 16)), 5000);
    expect(late.headers['content-type']).toBe('multipart/x-mixed-replace; boundary=biokioskframe');
    const part = late.body.toString('latin1');
    expect(part).toMatch(new RegExp(`^--biokioskframe\\r\\nContent-Type: image/jpeg\\r\\nContent-Length: ${jpeg.length}\\r\\n\\r\\n`));
    expect(late.body.subarray(late.body.indexOf('\r\n\r\n') + 4, late.body.indexOf('\r\n\r\n') + 4 + jpeg.length).equals(jpeg)).toBe(true);
    // The capture ended: the frame is gone from memory, a new viewer gets nothing.
    screen.emit('preview', null);
    const after = await stream('/preview.mjpg', (b) => b.length > 0, 500);
    expect(after.headers['content-type']).toBe('multipart/x-mixed-replace; boundary=biokioskframe');
    expect(after.body.length).toBe(0);
  });
});

describe('the words on the screen', () => {
  it('exist in both languages, and every decision reason and eligibility answer has its own plain words in each', async () => {
    const { TEXT, REASONS } = await import('../device/ui/static/i18n.js');
    const { REJECTION_CODES } = await import('../protocol/rejections.ts');
    const { ELIGIBILITY_CODES } = await import('../protocol/claims.ts');
    expect(Object.keys(TEXT['zh-Hans']!).sort()).toEqual(Object.keys(TEXT['en']!).sort());
    expect(Object.keys(REASONS['zh-Hans']!).sort()).toEqual(Object.keys(REASONS['en']!).sort());
    // The codes a decision policy adds (from unknown_scenario on) are what people see most: none falls back to the default sentence.
    const decisionCodes = REJECTION_CODES.slice(REJECTION_CODES.indexOf('unknown_scenario'));
    for (const lang of ['en', 'zh-Hans']) {
      expect(decisionCodes.filter((c) => !(c in REASONS[lang]!)), lang).toEqual([]);
      expect(ELIGIBILITY_CODES.filter((c) => !(`elig_${c}` in TEXT[lang]!)), lang).toEqual([]);
      // Placeholders match between the languages, so no word is left unfilled.
      for (const [k, en] of Object.entries(TEXT['en']!)) expect([...(TEXT[lang]![k] ?? '').matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort(), `${lang} ${k}`).toEqual([...en.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort());
    }
  });
});
