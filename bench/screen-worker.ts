/**
 * Issue 15 benchmark, run by bench/run.ts in its own process (prints one JSON line): the counter screen in Debian's
 * chromium (headless, playwright-core) on a hospital kiosk with the virtual camera (ffmpeg MJPEG pipe), a local
 * mosquitto and a verifier in this process with a decision policy and an eligibility table.
 *
 * 1. Start to verdict on screen: the page's own clock (performance.now) from the click on "Start" to the consent
 *    question painted, plus from the click on "I agree" to the verdict painted (the frame after the DOM shows it),
 *    minus the session's capture time (camera frames until a good one): the person's reading time is not the
 *    system's, nor is the camera's. Median and p95 over N sessions after warm-up.
 * 2. First paint after a kiosk boot: from the call that builds the kiosk (state folder, key store, outbox, relay)
 *    and serves its screen to the start screen painted with the kiosk's live state: in a browser already running,
 *    with chromium launched (by playwright) at the same moment as the kiosk, and with chromium started as kiosk
 *    mode does, given the URL once the kiosk serves it (to the page's request for the live state).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { CameraCaptureDevice } from '../device/capture/camera.ts';
import { CounterScreen } from '../device/ui/controller.ts';
import { serveScreen, type ScreenServer } from '../device/ui/server.ts';
import type { SessionResult } from '../device/session/session.ts';
import { FaceEngine } from '../models/face/engine.ts';
import { loadDecisionPolicy } from '../verifier/decision-policy.ts';
import { CsvEligibilitySource } from '../verifier/eligibility.ts';
import { VerifierNode } from '../verifier/node.ts';
import { openVerifier } from '../verifier/setup.ts';
import { CHROMIUM, CHROMIUM_ARGS, launchBrowser, type TestBrowser } from '../test/helpers/browser.ts';
import { startKiosk, tempDir, waitFor, type TestKiosk } from '../test/helpers/e2e.ts';
import { samplePath } from '../test/helpers/fixtures.ts';
import { Mosquitto } from '../test/helpers/mosquitto.ts';

const N = Number(process.env['BENCH_SCREEN_SESSIONS'] ?? 30);
const BOOTS = Number(process.env['BENCH_SCREEN_BOOTS'] ?? 5);
const WARMUP = 3;
const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))]!;
const summary = (a: number[]) => ({ p50: pct(a, 0.5), p95: pct(a, 0.95), min: Math.min(...a), max: Math.max(...a), n: a.length });

const POLICY = {
  version: 'bench-1',
  sites: { 'hospital-1': { kind: 'hospital' } },
  scenarios: { hospital_admission: { site_kinds: ['hospital'], modalities: ['face'], factors: 1, eligibility: true } },
};

type Win = { __bk: { clicks: Record<string, number>; painted: Record<string, number> } };

/** In the page: when each button is clicked, and when each screen is first painted after that (next frame). */
async function instrument(page: Page): Promise<void> {
  await page.evaluate(() => {
    const g = globalThis as unknown as Win & { document: any; MutationObserver: any; requestAnimationFrame(cb: () => void): void };
    g.__bk = { clicks: {}, painted: {} };
    g.document.addEventListener('click', (e: { target: { id?: string } }) => (g.__bk.clicks[e.target.id ?? ''] = performance.now()), true);
    new g.MutationObserver(() => {
      const s = g.document.body.dataset.screen as string;
      if (g.__bk.painted[s] === undefined) {
        g.__bk.painted[s] = -1;
        g.requestAnimationFrame(() => (g.__bk.painted[s] = performance.now()));
      }
    }).observe(g.document.body, { attributes: true, attributeFilter: ['data-screen'] });
  });
}

async function marks(page: Page): Promise<Win['__bk']> {
  return page.evaluate(() => (globalThis as unknown as Win).__bk);
}

const dir = await tempDir('bk-bench-screen-');
const broker = await Mosquitto.start();
const face = await FaceEngine.create();
const result: Record<string, unknown> = { sessions: N, boots: BOOTS };
const cleanups: Array<() => Promise<unknown>> = [];
try {
  const photo = join(dir, 'alice.jpg');
  await sharp(samplePath(2)).rotate().extract({ left: 960, top: 40, width: 900, height: 900 }).resize(640, 640).jpeg().toFile(photo);
  await writeFile(join(dir, 'policy.json'), JSON.stringify(POLICY));
  await writeFile(join(dir, 'eligibility.csv'), 'subject,payer,plan,valid_from,valid_to,services\nalice,Shanghai Medical Insurance,Basic-A,2020-01-01,,hospital_admission\n');
  const v = await openVerifier(join(dir, 'verifier'), { allowedModels: [face.pipeline.model.sha256], policy: await loadDecisionPolicy(join(dir, 'policy.json')), eligibility: await CsvEligibilitySource.open(join(dir, 'eligibility.csv')) });
  cleanups.push(() => v.close());
  await v.store.enroll({ subject: 'alice', modality: 'face', template: (await face.extract(await readFile(samplePath(2)))).template, templateFormat: 'biokiosk-face/1', modelSha256: face.pipeline.model.sha256 });
  const node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'bench-screen-verifier', protocolVersion: 5 });
  await node.start();
  cleanups.push(() => node.stop());

  const boot = async (i: number): Promise<{ k: TestKiosk; screen: CounterScreen; server: ScreenServer }> => {
    const k = await startKiosk(broker.url, v, `bench-screen-${i}`, { site: 'hospital-1', capture: [{ modality: 'face', device: new CameraCaptureDevice(`virtual:${photo}?fps=15`) }], engines: { face }, policy: { nonce: 'never', consent: 'required' } });
    const screen = new CounterScreen(k.kiosk, { siteKind: 'hospital' });
    const server = await serveScreen(screen);
    return { k, screen, server };
  };
  const shutdown = async (x: { k: TestKiosk; screen: CounterScreen; server: ScreenServer }) => {
    await x.server.close();
    await x.screen.close();
    await x.k.stop();
  };
  /** The wall-clock time (ms) the start screen was painted with live state, from a fresh navigation. */
  const paintedAt = async (page: Page, url: string): Promise<{ start: number; fcp: number }> => {
    await page.goto(url);
    await page.waitForSelector('body[data-screen="start"]');
    return page.evaluate(
      () =>
        new Promise<{ start: number; fcp: number }>((resolve) => {
          const g = globalThis as unknown as { requestAnimationFrame(cb: () => void): void };
          // The start screen is rendered in the same task as data-screen is set: its frame is the next one, or
          // already past; the earlier of "now + a frame" and the paint entries bounds it from above.
          const fcp = performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN;
          g.requestAnimationFrame(() => resolve({ start: performance.timeOrigin + performance.now(), fcp: performance.timeOrigin + fcp }));
        }),
    );
  };

  // 1. Start to verdict on screen.
  let browser: TestBrowser = await launchBrowser();
  cleanups.push(() => browser.close());
  const kiosk = await boot(0);
  await waitFor(() => kiosk.k.relay.connected, 10_000, 'kiosk connected');
  const results: SessionResult[] = [];
  kiosk.screen.on('result', ({ result: r }) => results.push(r));
  const page = await browser.page();
  await page.goto(kiosk.server.url);
  await page.waitForSelector('body[data-screen="start"]');
  const per: Record<string, number[]> = { toConsent: [], toVerdict: [], capture: [], extract: [], attest: [], awaitingVerdict: [], startToVerdictExclCapture: [] };
  const outcomes = new Map<string, number>();
  await instrument(page);
  for (let i = 0; i < N + WARMUP; i++) {
    await page.evaluate(() => void ((globalThis as unknown as Win).__bk = { clicks: {}, painted: {} }));
    await page.fill('#subject', 'alice');
    await page.click('#start');
    await page.waitForSelector('body[data-screen="consent"]');
    await page.click('#consent-yes');
    await page.waitForSelector('body[data-screen="result"]');
    await page.waitForFunction(() => ((globalThis as unknown as Win).__bk.painted['result'] ?? -1) > 0);
    const m = await marks(page);
    await waitFor(() => results.length === i + 1, 10_000, 'the session result');
    const r = results[i]!;
    await page.click('#done');
    await page.waitForSelector('body[data-screen="start"]');
    if (i < WARMUP) continue;
    outcomes.set(r.outcome, (outcomes.get(r.outcome) ?? 0) + 1);
    const toConsent = m.painted['consent']! - m.clicks['start']!;
    const toVerdict = m.painted['result']! - m.clicks['consent-yes']!;
    const capture = r.timings.capture ?? 0;
    per['toConsent']!.push(toConsent);
    per['toVerdict']!.push(toVerdict);
    per['capture']!.push(capture);
    per['extract']!.push(r.timings.extract ?? 0);
    per['attest']!.push(r.timings.attest ?? 0);
    per['awaitingVerdict']!.push(r.timings.awaiting_verdict ?? 0);
    per['startToVerdictExclCapture']!.push(toConsent + toVerdict - capture);
  }
  await page.close();
  await shutdown(kiosk);
  result['verdict'] = { outcomes: Object.fromEntries(outcomes), ...Object.fromEntries(Object.entries(per).map(([k, a]) => [k, summary(a)])) };

  // 2. First paint after a kiosk boot: browser running, then browser launched with the kiosk.
  const warm: number[] = [];
  const warmFcp: number[] = [];
  for (let i = 0; i < BOOTS; i++) {
    const p = await browser.page();
    const t0 = performance.timeOrigin + performance.now();
    const x = await boot(100 + i);
    const at = await paintedAt(p, x.server.url);
    warm.push(at.start - t0);
    warmFcp.push(at.fcp - t0);
    await p.close();
    await shutdown(x);
  }
  await browser.close();
  cleanups.pop();
  const cold: number[] = [];
  for (let i = 0; i < BOOTS; i++) {
    const t0 = performance.timeOrigin + performance.now();
    const [x, b] = await Promise.all([boot(200 + i), launchBrowser()]);
    browser = b;
    const p = await b.page();
    const at = await paintedAt(p, x.server.url);
    cold.push(at.start - t0);
    await b.close();
    await shutdown(x);
  }
  // As kiosk mode starts it: chromium given the screen's URL on its command line once the kiosk serves it, no
  // automation attached. The page's first request for the live state (its start screen is painted on that
  // state's arrival, a frame later) is seen where the server reads it.
  const direct: number[] = [];
  const stateOf = Object.getOwnPropertyDescriptor(CounterScreen.prototype, 'state')!.get!;
  for (let i = 0; i < BOOTS; i++) {
    const t0 = performance.timeOrigin + performance.now();
    const x = await boot(300 + i);
    let opened = 0;
    Object.defineProperty(x.screen, 'state', { get: () => ((opened ||= performance.timeOrigin + performance.now()), stateOf.call(x.screen)) });
    const profile = await mkdtemp(join(tmpdir(), 'bk-chromium-'));
    const chromium = spawn(CHROMIUM, [...CHROMIUM_ARGS, `--user-data-dir=${profile}`, x.server.url], { stdio: 'ignore' });
    try {
      await waitFor(() => opened > 0, 30_000, 'the page asking for the live state');
      direct.push(opened - t0);
    } finally {
      const gone = new Promise((r) => chromium.once('exit', r));
      chromium.kill();
      await gone;
      await rm(profile, { recursive: true, force: true });
      await shutdown(x);
    }
  }
  result['boot'] = { browserRunning: summary(warm), browserRunningFcp: summary(warmFcp), browserLaunched: summary(cold), kioskMode: summary(direct) };
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await face.close();
  await broker.stop();
}
process.stdout.write(JSON.stringify(result) + '\n');
