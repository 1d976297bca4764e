/**
 * The counter screen in a real browser (Debian's chromium, playwright-core), on real parts: mosquitto, a verifier
 * with a decision policy file and an eligibility CSV, kiosks from the one factory with the virtual camera (ffmpeg
 * MJPEG pipe) and the virtual ZFM fingerprint module (a pty), and the real engines. Each screen is screenshotted
 * (test-artifacts/ui/) and checked by axe-core (no serious or critical violations).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CameraCaptureDevice } from '../device/capture/camera.ts';
import { FingerprintCaptureDevice } from '../device/capture/fingerprint.ts';
import type { CaptureDevice } from '../device/capture/types.ts';
import { CounterScreen, type Screen, type ScreenOptions } from '../device/ui/controller.ts';
import { serveScreen, type ScreenServer } from '../device/ui/server.ts';
import { VirtualFingerprintSensor } from '../drivers/virtual/fingerprint-sensor.ts';
import { FaceEngine } from '../models/face/engine.ts';
import { FingerprintEngine } from '../models/fingerprint/engine.ts';
import { synthesizeFingerprintDataset } from '../models/fingerprint/synth/index.ts';
import type { DecisionRecord } from '../protocol/claims.ts';
import { loadDecisionPolicy } from '../verifier/decision-policy.ts';
import { CsvEligibilitySource } from '../verifier/eligibility.ts';
import { VerifierNode } from '../verifier/node.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import { launchBrowser, seriousViolations, shot, type TestBrowser } from './helpers/browser.ts';
import { logRecords, startKiosk, tempDir, waitFor, type TestKiosk } from './helpers/e2e.ts';
import { spawnBiokiosk } from './helpers/cli.ts';
import { samplePath } from './helpers/fixtures.ts';
import { Mosquitto } from './helpers/mosquitto.ts';

export const TEST_POLICY = {
  version: 'test-2026.11',
  sites: {
    'pharmacy-1': { kind: 'pharmacy', lat: 31.2304, lon: 121.4737 },
    'pharmacy-2': { kind: 'pharmacy', lat: 31.2304, lon: 121.4737 },
    'hospital-1': { kind: 'hospital' },
  },
  scenarios: {
    otc_pickup: { site_kinds: ['pharmacy'], modalities: ['face', 'fingerprint'], factors: 1 },
    prescription: { site_kinds: ['pharmacy'], modalities: ['face', 'fingerprint'], factors: 1 },
    controlled_substance: { site_kinds: ['pharmacy'], modalities: ['face', 'fingerprint'], factors: 2 },
    hospital_admission: { site_kinds: ['hospital'], modalities: ['face', 'fingerprint'], factors: 1, eligibility: true },
  },
  lockout: { window_minutes: 15, max_failures: 5, base_delay_seconds: 60, max_delay_seconds: 3600 },
};

let broker: Mosquitto;
let v: VerifierInstance;
let node: VerifierNode;
let face: FaceEngine;
let finger: FingerprintEngine;
let browser: TestBrowser;
let dir: string;
let photos: { alice: string; stranger: string; empty: string };
let fingers: { enrolled: string; genuine: string };
const kiosks: TestKiosk[] = [];
const servers: ScreenServer[] = [];
const screens: CounterScreen[] = [];
const sensors: VirtualFingerprintSensor[] = [];
/** The screens checked (screenshot, axe, touch targets), to show at the end that none was left out. */
const checked = new Set<string>();

/** Every control smaller than 44x44 CSS px (EN 301 549 / WCAG 2.5.5 asks 44 for touch). */
async function smallTargets(page: Page): Promise<Array<{ id: string; width: number; height: number }>> {
  return page.evaluate(() => {
    const d = (globalThis as unknown as { document: { querySelectorAll(s: string): Array<{ id: string; tagName: string; getBoundingClientRect(): { width: number; height: number } }> } }).document;
    return [...d.querySelectorAll('button, input, select, a[href]')].map((e) => ({ id: e.id || e.tagName, width: e.getBoundingClientRect().width, height: e.getBoundingClientRect().height })).filter((r) => r.width < 44 || r.height < 44);
  });
}

/** A screen as the person sees it: kept as a screenshot, checked by axe-core and for touch-target sizes. */
async function check(page: Page, name: string): Promise<void> {
  await shot(page, name);
  expect(await seriousViolations(page), `axe on ${name}`).toEqual([]);
  expect(await smallTargets(page), `touch targets on ${name}`).toEqual([]);
  checked.add(String(await page.getAttribute('body', 'data-screen')));
}

async function screenOf(page: Page, screen: string, timeoutMs = 30_000): Promise<void> {
  await page.waitForSelector(`body[data-screen="${screen}"]`, { timeout: timeoutMs });
}

async function counterKiosk(name: string, site: string, devices: CaptureDevice[], o: ScreenOptions = {}, policy: Record<string, unknown> = {}): Promise<{ k: TestKiosk; screen: CounterScreen; url: string }> {
  const k = await startKiosk(broker.url, v, name, {
    site,
    capture: devices.map((device) => ({ modality: device.modality, device })),
    engines: { face, fingerprint: finger },
    policy: { nonce: 'never', consent: 'required', verdictTimeoutMs: 8000, ...policy },
  });
  kiosks.push(k);
  await waitFor(() => k.relay.connected, 10_000, `${name} connected`);
  const screen = new CounterScreen(k.kiosk, o);
  screens.push(screen);
  const server = await serveScreen(screen);
  servers.push(server);
  return { k, screen, url: server.url };
}

function camera(photo: string, fps = 10): CameraCaptureDevice {
  return new CameraCaptureDevice(`virtual:${photo}?fps=${fps}`);
}

async function fingerprintDevice(images: string[], present = true): Promise<{ device: FingerprintCaptureDevice; sensor: VirtualFingerprintSensor }> {
  const sensor = await VirtualFingerprintSensor.start({ images, baud: 115_200, pacing: false, finger: present });
  sensors.push(sensor);
  return { sensor, device: new FingerprintCaptureDevice({ path: sensor.path, baudRate: 115_200, reopenIntervalMs: 100 }) };
}

/** One attempt by the mouse: id, consent, and whatever the screen ends on. */
async function attempt(page: Page, subject: string): Promise<void> {
  await page.fill('#subject', subject);
  await page.click('#start');
  await screenOf(page, 'consent');
  await page.click('#consent-yes');
}

beforeAll(async () => {
  dir = await tempDir('bk-ui-');
  broker = await Mosquitto.start();
  face = await FaceEngine.create();
  finger = await FingerprintEngine.create();
  const set = await synthesizeFingerprintDataset({ out: join(dir, 'fingers'), fingers: 1, impressions: 2, seed: 11, workers: 0 });
  fingers = { enrolled: set.files.find((f) => /1_1\.png$/.test(f))!, genuine: set.files.find((f) => /1_2\.png$/.test(f))! };
  photos = { alice: join(dir, 'alice.jpg'), stranger: join(dir, 'stranger.jpg'), empty: join(dir, 'empty.jpg') };
  // Camera-sized frames (640 px), as a kiosk's camera gives: the full-size photos would only slow every capture.
  await sharp(samplePath(6)).resize({ width: 640 }).jpeg().toFile(photos.stranger);
  // An empty counter: grey with a little texture, no face in it.
  await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 120, g: 124, b: 130 } }, }).composite([{ input: Buffer.from('<svg width="640" height="480"><rect x="80" y="300" width="480" height="60" fill="#555"/></svg>') }]).jpeg().toFile(photos.empty);
  await sharp(samplePath(2)).rotate().extract({ left: 960, top: 40, width: 900, height: 900 }).resize(640, 640).modulate({ brightness: 1.1 }).jpeg().toFile(photos.alice);
  const policyPath = join(dir, 'policy.json');
  await writeFile(policyPath, JSON.stringify(TEST_POLICY));
  const csv = join(dir, 'eligibility.csv');
  await writeFile(csv, 'subject,payer,plan,valid_from,valid_to,services\nalice,Shanghai Medical Insurance,Basic-A,2020-01-01,,hospital_admission;prescription\n');
  v = await openVerifier(join(dir, 'verifier'), { allowedModels: [face.pipeline.model.sha256, finger.model.sha256], policy: await loadDecisionPolicy(policyPath), eligibility: await CsvEligibilitySource.open(csv) });
  const fx = await face.extract(await readFile(samplePath(2)));
  const px = await finger.extract(await readFile(fingers.enrolled));
  for (const subject of ['alice', 'carol', 'dave']) {
    await v.store.enroll({ subject, modality: 'face', template: fx.template, templateFormat: 'biokiosk-face/1', modelSha256: face.pipeline.model.sha256 });
    await v.store.enroll({ subject, modality: 'fingerprint', template: px.template, templateFormat: 'biokiosk-fingerprint/1', modelSha256: finger.model.sha256 });
  }
  node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'ui-verifier', protocolVersion: 5 });
  await node.start();
  browser = await launchBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  for (const s of screens) await s.close().catch(() => {});
  for (const s of servers) await s.close().catch(() => {});
  for (const k of kiosks) await k.stop().catch(() => {});
  for (const s of sensors) await s.stop().catch(() => {});
  await node?.stop();
  await v?.close();
  await face?.close();
  await finger?.close();
  await broker?.stop();
});

describe('the counter screen in a browser', () => {
  it('hospital kiosk, keyboard only: genuine subject -> verified with eligibility; the language switches at any time', async () => {
    const { url } = await counterKiosk('kiosk-hospital', 'hospital-1', [camera(photos.alice)], { siteKind: 'hospital' });
    const page = await browser.page();
    await page.goto(url);
    await screenOf(page, 'start');
    await check(page, '01-start-en');
    // Simplified Chinese, then back: every word changes, the page's language too.
    await page.click('#lang');
    await page.waitForFunction(() => (globalThis as unknown as { document: { documentElement: { lang: string } } }).document.documentElement.lang === 'zh-Hans');
    expect(await page.textContent('h1')).toBe('欢迎');
    expect(await page.textContent('label[for=subject]')).toBe('患者编号或医保卡号');
    await check(page, '02-start-zh');
    await page.click('#lang');
    await page.waitForFunction(() => (globalThis as unknown as { document: { documentElement: { lang: string } } }).document.documentElement.lang === 'en');
    // From here on the keyboard only: the id field has the focus; Enter submits.
    await page.focus('#subject');
    await page.keyboard.type('alice');
    await page.keyboard.press('Enter');
    await screenOf(page, 'consent');
    await check(page, '03-consent');
    expect(await page.textContent('#consent-text')).toContain('hospital admission');
    // Focus is on the heading; Tab reaches "I agree" first.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id)).toBe('consent-yes');
    await page.keyboard.press('Enter');
    await screenOf(page, 'result');
    await check(page, '04-verified-eligibility');
    expect(await page.textContent('h1')).toBe('Verified');
    expect(await page.textContent('#eligibility h2')).toContain('Covered');
    expect(await page.textContent('#eligibility')).toContain('Shanghai Medical Insurance');
    // A patient's screen shows no receipt and no override.
    expect(await page.$('#receipt')).toBeNull();
    expect(await page.$('#override')).toBeNull();
    // The consent was logged with the decision: purpose, time, text version, language.
    const rec = (await logRecords<DecisionRecord>(v)).filter((r) => r.ueid === 'kiosk-hospital').at(-1)!;
    expect(rec).toMatchObject({ decision: 'match', sub: 'alice', site: 'hospital-1', consent: { purpose: 'hospital_admission', text: 'consent-biometric/1', lang: 'en' } });
    expect(rec.detail).toMatchObject({ scenario: 'hospital_admission', policy_version: 'test-2026.11', eligibility: { answer: 'covered', code: 'covered' } });
    // Chinese on the result screen too.
    await page.keyboard.press('Shift+Tab');
    await page.click('#lang');
    await page.waitForFunction(() => (globalThis as unknown as { document: { documentElement: { lang: string } } }).document.documentElement.lang === 'zh-Hans');
    expect(await page.textContent('h1')).toBe('核验通过');
    await check(page, '05-verified-zh');
    await page.close();
  }, 90_000);

  it('pharmacy: an impostor is not verified; the pharmacist checks the ID by hand, attested and logged', async () => {
    const { url } = await counterKiosk('kiosk-pharmacy-1', 'pharmacy-1', [camera(photos.stranger)], { siteKind: 'pharmacy' });
    const page = await browser.page();
    await page.goto(url);
    await screenOf(page, 'start');
    await page.selectOption('#scenario', 'prescription');
    await attempt(page, 'alice');
    await screenOf(page, 'result');
    expect(await page.textContent('h1')).toBe('Not verified');
    expect(await page.textContent('#reasons')).toBe('The check did not match the biometric on record for this ID.');
    expect(await page.textContent('#receipt')).toMatch(/Audit receipt: entry \d+ of \d+/);
    await check(page, '06-not-verified-pharmacist');
    await page.selectOption('#override-reason', 'id_document_checked');
    await page.fill('#override-staff', 'pharmacist-07');
    await page.click('#override-submit');
    await page.waitForFunction(() => (globalThis as unknown as { document: { body: { dataset: { screen: string } }; querySelector(s: string): { textContent: string } | null } }).document.querySelector('h1')?.textContent === 'Verified: ID checked by staff');
    await check(page, '07-override');
    const recs = (await logRecords<DecisionRecord>(v)).filter((r) => r.ueid === 'kiosk-pharmacy-1');
    const [miss, over] = recs.slice(-2);
    expect(miss).toMatchObject({ decision: 'no_match', sub: 'alice', detail: { scenario: 'prescription' } });
    expect(over).toMatchObject({ decision: 'match', reasons: ['staff_override'], sub: 'alice', score: null, detail: { scenario: 'prescription', override: { of: miss!.att_id, reason: 'id_document_checked', staff: 'pharmacist-07' } } });
    await page.close();
  }, 90_000);

  it('step_up: a controlled substance needs a second modality; the screen asks for the finger, then verified', async () => {
    const { device, sensor } = await fingerprintDevice([fingers.genuine], false);
    const { url } = await counterKiosk('kiosk-pharmacy-2', 'pharmacy-2', [camera(photos.alice), device], { siteKind: 'pharmacy' }, { captureTimeoutMs: { fingerprint: 30_000 } });
    const page = await browser.page();
    await page.goto(url);
    await screenOf(page, 'start');
    await page.selectOption('#scenario', 'controlled_substance');
    await attempt(page, 'alice');
    await page.waitForSelector('#step-up', { timeout: 30_000 });
    expect(await page.textContent('#prompt')).toBe('Place your finger on the reader');
    expect(await page.textContent('#step-up')).toContain('fingerprint');
    await check(page, '08-step-up-capture');
    await sensor.setFinger(true);
    await screenOf(page, 'result');
    expect(await page.textContent('h1')).toBe('Verified');
    await check(page, '09-step-up-verified');
    const recs = (await logRecords<DecisionRecord>(v)).filter((r) => r.ueid === 'kiosk-pharmacy-2');
    const [first, second] = recs.slice(-2);
    expect(first).toMatchObject({ decision: 'step_up', modality: 'face', reasons: ['second_factor_required'], detail: { step_up: { modalities: ['fingerprint'], factors: { have: 1, need: 2 } } } });
    expect(second).toMatchObject({ decision: 'match', modality: 'fingerprint', step_of: first!.att_id });
    await page.close();
  }, 90_000);

  it('five failures across two kiosks lock the identity; a genuine attempt during the lock is refused too', async () => {
    const a = await counterKiosk('kiosk-lock-a', 'pharmacy-1', [camera(photos.stranger)]);
    const b = await counterKiosk('kiosk-lock-b', 'pharmacy-2', [camera(photos.stranger)]);
    const pa = await browser.page();
    const pb = await browser.page();
    await pa.goto(a.url);
    await pb.goto(b.url);
    for (let i = 1; i <= 5; i++) {
      const p = i % 2 ? pa : pb;
      // The kiosk in front (a background tab gets no animation frames, and every action waits for one).
      await p.bringToFront();
      await screenOf(p, 'start');
      await attempt(p, 'carol');
      await screenOf(p, 'result');
      const h = await p.textContent('h1');
      if (i < 5) expect(h).toBe('Not verified');
      else {
        expect(h).toBe('Too many attempts');
        expect(await p.textContent('#locked-until')).toMatch(/paused until/);
        await check(p, '10-locked');
      }
      await p.click('#done');
    }
    // Carol herself now, on the first kiosk: still locked (and the lock grows).
    await a.k.kiosk.replaceDevice(camera(photos.alice));
    await pa.bringToFront();
    await screenOf(pa, 'start');
    await attempt(pa, 'carol');
    await screenOf(pa, 'result');
    expect(await pa.textContent('h1')).toBe('Too many attempts');
    const attempts = await v.store.attemptsOf('carol', 0);
    expect(attempts.map((x) => x.ueid)).toEqual(['kiosk-lock-a', 'kiosk-lock-b', 'kiosk-lock-a', 'kiosk-lock-b', 'kiosk-lock-a', 'kiosk-lock-a']);
    const recs = (await logRecords<DecisionRecord>(v)).filter((r) => r.sub === 'carol');
    const l1 = recs.at(-2)!.detail!.locked_until!;
    const l2 = recs.at(-1)!.detail!.locked_until!;
    expect(l2 - l1).toBeGreaterThanOrEqual(59);
    await pa.close();
    await pb.close();
  }, 120_000);

  it('verifier stopped: "queued, will be confirmed", then confirmed on screen when it returns', async () => {
    const { url, k } = await counterKiosk('kiosk-offline', 'pharmacy-1', [camera(photos.alice)], {}, { verdictTimeoutMs: 5000 });
    const page = await browser.page();
    await page.goto(url);
    await screenOf(page, 'start');
    await node.stop();
    try {
      await attempt(page, 'dave');
      // Waiting for a verdict that does not come (for verdictTimeoutMs): the progress screen.
      await page.waitForFunction(() => (globalThis as unknown as { document: { getElementById(s: string): { textContent: string } | null } }).document.getElementById('working')?.textContent === 'Waiting for the decision…', undefined, { timeout: 30_000 });
      await check(page, '11-working');
      await screenOf(page, 'queued');
      expect(await page.textContent('h1')).toBe('Queued, will be confirmed');
      await check(page, '11-queued');
    } finally {
      node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'ui-verifier', protocolVersion: 5 });
      await node.start();
    }
    k.state.outbox.retryAllNow();
    k.relay.nudge();
    await screenOf(page, 'result', 20_000);
    expect(await page.textContent('h1')).toBe('Verified');
    expect(await page.textContent('#confirmed-later')).toContain('Confirmed after the network came back');
    await check(page, '12-confirmed-later');
    await page.close();
  }, 90_000);

  it('the fingerprint reader unplugged mid-session: a clear prompt, the counter path', async () => {
    const { device, sensor } = await fingerprintDevice([fingers.genuine]);
    const { url } = await counterKiosk('kiosk-unplug', 'pharmacy-1', [device]);
    await sensor.fault({ type: 'disconnect', afterDataPackets: 20 });
    const page = await browser.page();
    await page.goto(url);
    await screenOf(page, 'start');
    await attempt(page, 'alice');
    await screenOf(page, 'device_error');
    expect(await page.textContent('h1')).toBe('The reader is not working');
    expect(await page.textContent('#device-error')).toContain('fingerprint reader was disconnected');
    await page.waitForFunction(() => (globalThis as unknown as { document: { getElementById(s: string): { textContent: string } } }).document.getElementById('health').textContent.includes('missing'));
    await check(page, '13-device-error');
    await page.close();
  }, 90_000);

  it('consent refused: the counter path, and never a capture', async () => {
    const cam = camera(photos.alice);
    let captures = 0;
    const capture = cam.capture.bind(cam);
    cam.capture = (o) => {
      captures++;
      return capture(o);
    };
    const { url, k } = await counterKiosk('kiosk-refuse', 'pharmacy-1', [cam]);
    const page = await browser.page();
    await page.goto(url);
    await screenOf(page, 'start');
    await page.fill('#subject', 'alice');
    await page.click('#start');
    await screenOf(page, 'consent');
    await page.click('#consent-no');
    await screenOf(page, 'counter');
    expect(await page.textContent('h1')).toBe('Please go to the counter');
    expect(await page.textContent('#reasons')).toContain('No consent was given');
    await check(page, '14-counter');
    expect(captures).toBe(0);
    expect(k.state.outbox.size.entries).toBe(0);
    await page.close();
  }, 60_000);

  it('a timeout warns first and gives at least 20 s to continue', async () => {
    const { url } = await counterKiosk('kiosk-timeout', 'pharmacy-1', [camera(photos.alice)], { idleMs: 300, warnMs: 5000 });
    const page = await browser.page();
    await page.goto(url);
    await screenOf(page, 'start');
    await page.fill('#subject', 'alice');
    await page.click('#start');
    await page.waitForSelector('#warning', { timeout: 10_000 });
    // warnMs 5000 was asked for; the screen never gives less than 20 s.
    const seconds = Number((await page.textContent('#warning-text'))!.match(/(\d+) seconds/)![1]);
    expect(seconds).toBeGreaterThanOrEqual(19);
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id)).toBe('continue');
    await check(page, '15-timeout-warning');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#warning', { state: 'detached' });
    expect(await page.getAttribute('body', 'data-screen')).toBe('consent');
    await page.close();
  }, 60_000);

  it('no face in view: "look at the camera" over the live preview, a hint to hold still, and the counter path from there', async () => {
    const { url, k } = await counterKiosk('kiosk-noface', 'pharmacy-1', [camera(photos.empty, 5)], {}, { maxCaptures: { face: 100 }, captureTimeoutMs: { face: 60_000 } });
    const page = await browser.page();
    await page.goto(url);
    await screenOf(page, 'start');
    await attempt(page, 'alice');
    await screenOf(page, 'capture');
    expect(await page.textContent('#prompt')).toBe('Look at the camera');
    await page.waitForFunction(() => (globalThis as unknown as { document: { getElementById(s: string): { textContent: string } | null } }).document.getElementById('retry-hint')?.textContent === 'Not clear enough yet. Please hold still.', undefined, { timeout: 30_000 });
    // Retries update the screen in place: the preview element (and its one stream) stays.
    const previewBefore = await page.$('#preview');
    await page.waitForFunction(() => /Attempt [3-9]|Attempt \d\d/.test((globalThis as unknown as { document: { getElementById(s: string): { textContent: string } | null } }).document.getElementById('progress')?.textContent ?? ''), undefined, { timeout: 30_000 });
    expect(await previewBefore!.evaluate((e) => (e as unknown as { isConnected: boolean }).isConnected)).toBe(true);
    // The preview is the camera's own frames, served on the loopback socket only.
    await page.waitForFunction(() => ((globalThis as unknown as { document: { getElementById(s: string): { naturalWidth: number } | null } }).document.getElementById('preview')?.naturalWidth ?? 0) > 0, undefined, { timeout: 30_000 });
    await check(page, '16-capture-face');
    // The counter path is open from the capture screen too: the capture stops, nothing is attested.
    await page.click('#to-counter');
    await screenOf(page, 'counter');
    expect(k.state.outbox.size.entries).toBe(0);
    expect((await logRecords<DecisionRecord>(v)).filter((r) => r.ueid === 'kiosk-noface')).toEqual([]);
    await page.close();
  }, 90_000);

  it('`biokiosk demo --screen` serves the screen with the example policy and eligibility; the browser checks Alice in; Ctrl-C stops it', async () => {
    const demo = spawnBiokiosk(['demo', '--screen', '0', '--site-kind', 'hospital']);
    try {
      await waitFor(() => demo.out.some((l) => /^counter screen \(hospital\) on http:\/\/127\.0\.0\.1:\d+\/$/.test(l)) || demo.child.exitCode !== null, 60_000, 'the demo screen URL');
      const url = demo.out.find((l) => l.startsWith('counter screen'))?.split(' on ')[1];
      expect(url, demo.err()).toBeDefined();
      const page = await browser.page();
      await page.goto(url!);
      await screenOf(page, 'start');
      await attempt(page, 'alice');
      await screenOf(page, 'result');
      expect(await page.textContent('h1')).toBe('Verified');
      expect(await page.textContent('#eligibility')).toContain('Shanghai Medical Insurance');
      await page.close();
      await waitFor(() => demo.out.includes('alice: MATCH'), 10_000, 'the result printed');
      demo.child.kill('SIGINT');
      const code = await new Promise<number | null>((r) => demo.child.once('exit', (c) => r(c)));
      expect(code).toBe(0);
    } finally {
      await demo.stop();
    }
  }, 120_000);

  it('every screen was checked: screenshot, axe-core and touch targets', () => {
    const all: Screen[] = ['start', 'consent', 'capture', 'working', 'result', 'queued', 'counter', 'device_error'];
    expect([...checked].sort()).toEqual([...all].sort());
  });
});
