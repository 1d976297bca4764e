/**
 * Verification sessions end to end with real parts: mosquitto, a verifier, the kiosk factory, the virtual camera
 * (ffmpeg MJPEG pipe) with photos, the virtual ZFM serial module (a pty) with synthetic fingers, and the real
 * engines. A face session; a fingerprint session; falling back from face to fingerprint; cancelling during capture;
 * the sensor unplugged mid-session; offline at attest; a site that requires an online check; and no biometric
 * buffer left unwiped.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CameraCaptureDevice } from '../device/capture/camera.ts';
import { FingerprintCaptureDevice } from '../device/capture/fingerprint.ts';
import type { CaptureDevice, CapturedImage } from '../device/capture/types.ts';
import type { SessionEvent } from '../device/session/events.ts';
import { VirtualFingerprintSensor } from '../drivers/virtual/fingerprint-sensor.ts';
import { FaceEngine } from '../models/face/engine.ts';
import { FingerprintEngine } from '../models/fingerprint/engine.ts';
import { synthesizeFingerprintDataset } from '../models/fingerprint/synth/index.ts';
import { IrisEngine } from '../models/iris/engine.ts';
import { synthesizeIrisDataset } from '../models/iris/synth/dataset.ts';
import { IrisCaptureDevice } from '../device/capture/iris.ts';
import { IrisCamera } from '../drivers/hid/iris-camera.ts';
import { VirtualHidBinding } from '../drivers/virtual/hid-binding.ts';
import { loadIrisImages, VirtualIrisCamera } from '../drivers/virtual/hid-iris-camera.ts';
import type { ModalityEngine } from '../models/modality.ts';
import { VerifierNode } from '../verifier/node.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import { startKiosk, tempDir, waitFor, type TestKiosk } from './helpers/e2e.ts';
import { samplePath } from './helpers/fixtures.ts';
import { Mosquitto } from './helpers/mosquitto.ts';

let broker: Mosquitto;
let v: VerifierInstance;
let node: VerifierNode;
let face: FaceEngine;
let finger: FingerprintEngine;
let fingers: { enrolled: string; genuine: string; other: string };
let alicePhoto: string;
const sensors: VirtualFingerprintSensor[] = [];
const kiosks: TestKiosk[] = [];

/** Wraps a device so the test sees every image buffer it handed out (to check they were wiped). */
function recording(device: CaptureDevice): { device: CaptureDevice; images: CapturedImage[] } {
  const images: CapturedImage[] = [];
  const capture = device.capture.bind(device);
  device.capture = async (o) => {
    const img = await capture(o);
    images.push(img);
    return img;
  };
  return { device, images };
}

/** Wraps an engine so the test sees every template it made. */
function recordingEngine(engine: ModalityEngine): { engine: ModalityEngine; templates: Uint8Array[] } {
  const templates: Uint8Array[] = [];
  const wrapped: ModalityEngine = {
    name: engine.name,
    extract: async (image) => {
      const x = await engine.extract(image);
      templates.push(x.template);
      return x;
    },
    compare: (a, b) => engine.compare(a, b),
    close: async () => {},
  };
  return { engine: wrapped, templates };
}

async function fingerprintDevice(images: string[], o: { finger?: boolean } = {}): Promise<{ device: FingerprintCaptureDevice; sensor: VirtualFingerprintSensor }> {
  const sensor = await VirtualFingerprintSensor.start({ images, baud: 115_200, pacing: false, finger: o.finger ?? true });
  sensors.push(sensor);
  return { sensor, device: new FingerprintCaptureDevice({ path: sensor.path, baudRate: 115_200, reopenIntervalMs: 100 }) };
}

async function kiosk(name: string, capture: CaptureDevice[], engines: Partial<Record<'face' | 'fingerprint' | 'iris', ModalityEngine>>, policy = {}): Promise<TestKiosk> {
  const k = await startKiosk(broker.url, v, name, { capture: capture.map((device) => ({ modality: device.modality, device })), engines, policy: { nonce: 'never', ...policy } });
  kiosks.push(k);
  await waitFor(() => k.relay.connected, 10_000, `${name} connected`);
  return k;
}

function run(k: TestKiosk, subject = 'alice') {
  const events: SessionEvent[] = [];
  const s = k.kiosk.session();
  s.on('event', (e) => events.push(e));
  s.begin();
  s.identify(subject);
  return { s, events, done: s.done };
}

const states = (events: SessionEvent[]) => events.filter((e) => e.type === 'transition').map((e) => (e as { to: string }).to);

beforeAll(async () => {
  broker = await Mosquitto.start();
  face = await FaceEngine.create();
  finger = await FingerprintEngine.create();
  const dir = await tempDir('bk-session-');
  const set = await synthesizeFingerprintDataset({ out: join(dir, 'fingers'), fingers: 2, impressions: 2, seed: 11, workers: 0 });
  const file = (re: RegExp) => set.files.find((f) => re.test(f))!;
  fingers = { enrolled: file(/1_1\.png$/), genuine: file(/1_2\.png$/), other: file(/2_1\.png$/) };
  alicePhoto = join(dir, 'alice.jpg');
  await sharp(samplePath(2)).rotate().extract({ left: 960, top: 40, width: 900, height: 900 }).modulate({ brightness: 1.1 }).jpeg().toFile(alicePhoto);
  v = await openVerifier(join(dir, 'verifier'), { allowedModels: [face.pipeline.model.sha256, finger.model.sha256] });
  const fx = await face.extract(await readFile(samplePath(2)));
  await v.store.enroll({ subject: 'alice', modality: 'face', template: fx.template, templateFormat: 'biokiosk-face/1', modelSha256: face.pipeline.model.sha256 });
  const px = await finger.extract(await readFile(fingers.enrolled));
  await v.store.enroll({ subject: 'alice', modality: 'fingerprint', template: px.template, templateFormat: 'biokiosk-fingerprint/1', modelSha256: finger.model.sha256 });
  node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'session-verifier', protocolVersion: 5 });
  await node.start();
}, 180_000);

afterAll(async () => {
  for (const k of kiosks) await k.stop().catch(() => {});
  for (const s of sensors) await s.stop().catch(() => {});
  await node?.stop();
  await v?.close();
  await face?.close();
  await finger?.close();
  await broker?.stop();
});

describe('verification sessions', () => {
  it('a face session: identify, capture, extract, attest, verdict with a checked receipt, cleared; no image or template left unwiped', async () => {
    const cam = recording(new CameraCaptureDevice(`virtual:${alicePhoto}?fps=10`));
    const eng = recordingEngine(face);
    const k = await kiosk('kiosk-face', [cam.device], { face: eng.engine });
    const { events, done } = run(k);
    const r = await done;
    expect(r).toMatchObject({ outcome: 'match', subject: 'alice', modality: 'face', reasons: [] });
    expect(states(events)).toEqual(['identify', 'capture', 'extract', 'attest', 'awaiting_verdict', 'result', 'cleared']);
    const capture = events.find((e) => e.type === 'transition' && e.to === 'capture') as { payload: { prompt: string; attempt: number; of: number } };
    expect(capture.payload).toMatchObject({ prompt: 'look_at_camera', attempt: 1, of: 5 });
    const result = events.find((e) => e.type === 'transition' && e.to === 'result') as { payload: { receipt: { treeSize: number } | null } };
    expect(result.payload.receipt?.treeSize).toBeGreaterThan(0);
    expect(k.kiosk.heads.latest()?.treeSize).toBe(result.payload.receipt?.treeSize);
    expect(cam.images.length).toBeGreaterThan(0);
    for (const img of cam.images) expect(img.bytes.every((b) => b === 0)).toBe(true);
    for (const t of eng.templates) expect(t.every((b) => b === 0)).toBe(true);
    expect(k.state.outbox.size.entries).toBe(0);
    for (const s of ['capture', 'extract', 'attest', 'awaiting_verdict'] as const) expect(r.timings[s]).toBeGreaterThan(0);
  }, 60_000);

  it("a fingerprint session on the virtual serial module; someone else's finger next does not match", async () => {
    const { device } = await fingerprintDevice([fingers.genuine, fingers.other]);
    const k = await kiosk('kiosk-finger', [device], { fingerprint: finger });
    const { events, done } = run(k);
    const r = await done;
    expect(r).toMatchObject({ outcome: 'match', modality: 'fingerprint' });
    const capture = events.find((e) => e.type === 'transition' && e.to === 'capture') as { payload: { prompt: string } };
    expect(capture.payload.prompt).toBe('place_finger');
    const impostor = await run(k).done;
    expect(impostor).toMatchObject({ outcome: 'no_match', modality: 'fingerprint' });
  }, 60_000);

  it('falls back from face to fingerprint when no usable face comes after N frames', async () => {
    // The camera sees a fingerprint image: no face in any frame.
    const noFace = join(await tempDir('bk-noface-'), 'noface.jpg');
    await sharp(fingers.other).resize(640, 480).jpeg().toFile(noFace);
    const cam = new CameraCaptureDevice(`virtual:${noFace}?fps=10`);
    const { device } = await fingerprintDevice([fingers.genuine]);
    const k = await kiosk('kiosk-fallback', [cam, device], { face, fingerprint: finger }, { maxCaptures: { face: 3 } });
    const { events, done } = run(k);
    const r = await done;
    expect(r).toMatchObject({ outcome: 'match', modality: 'fingerprint' });
    const faceTries = events.filter((e) => e.type === 'quality' && e.modality === 'face');
    expect(faceTries).toHaveLength(3);
    expect(faceTries.every((e) => e.type === 'quality' && !e.accepted)).toBe(true);
    expect(events.find((e) => e.type === 'fallback')).toMatchObject({ from: 'face', to: 'fingerprint' });
  }, 90_000);

  it('cancel during capture leaves nothing in the outbox', async () => {
    const { device } = await fingerprintDevice([fingers.genuine], { finger: false });
    const k = await kiosk('kiosk-cancel', [device], { fingerprint: finger }, { captureTimeoutMs: { fingerprint: 60_000 } });
    const { s, events, done } = run(k);
    await waitFor(() => s.state === 'capture', 10_000, 'the capture to start');
    await new Promise((r) => setTimeout(r, 300));
    s.cancel();
    const r = await done;
    expect(r.outcome).toBe('cancelled');
    expect(states(events).at(-1)).toBe('cleared');
    expect((events.at(-1) as { payload: { cancelled: boolean } }).payload.cancelled).toBe(true);
    expect(k.state.outbox.size.entries).toBe(0);
    expect(k.state.outbox.all()).toEqual([]);
  }, 60_000);

  it('the sensor unplugged mid-session ends the session with a clear event; the port is reopened and the next session works', async () => {
    const { device, sensor } = await fingerprintDevice([fingers.genuine]);
    const k = await kiosk('kiosk-unplug', [device], { fingerprint: finger });
    // The module vanishes half-way through the image upload.
    await sensor.fault({ type: 'disconnect', afterDataPackets: 20 });
    const { events, done } = run(k);
    const r = await done;
    expect(r.outcome).toBe('failed');
    expect(r.reasons).toEqual(['device_gone']);
    expect(events.some((e) => e.type === 'device' && e.status === 'vanished')).toBe(true);
    expect(k.alarms.some((a) => a.kind === 'device' && a.modality === 'fingerprint')).toBe(true);
    expect(k.state.outbox.size.entries).toBe(0);
    await sensor.plugIn();
    await waitFor(() => device.available, 10_000, 'the port reopened');
    const again = await run(k).done;
    expect(again.outcome).toBe('match');
  }, 90_000);

  it('offline at attest: the attempt is reported queued, and its verdict settles it when the verifier is back', async () => {
    const { device } = await fingerprintDevice([fingers.genuine]);
    const k = await kiosk('kiosk-offline', [device], { fingerprint: finger }, { verdictTimeoutMs: 1500 });
    await node.stop();
    const r = await run(k).done;
    node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'session-verifier', protocolVersion: 5 });
    expect(r.outcome).toBe('queued');
    expect(k.state.outbox.get(r.attId!)).toBeDefined();
    await node.start();
    k.state.outbox.retryAllNow();
    k.relay.nudge();
    await waitFor(() => k.verdicts.some((x) => x.attId === r.attId), 15_000, 'the queued attempt settled');
    expect(k.verdicts.find((x) => x.attId === r.attId)?.decision).toBe('match');
    expect(k.state.outbox.size.entries).toBe(0);
  }, 90_000);

  it('a site that requires an online check sends the person to the counter when no verifier answers', async () => {
    const { device } = await fingerprintDevice([fingers.genuine]);
    const k = await kiosk('kiosk-nonce', [device], { fingerprint: finger }, { nonce: 'required', nonceTimeoutMs: 800 });
    // No verifier on the broker: nobody answers the nonce request.
    await node.stop();
    try {
      const r = await run(k).done;
      expect(r).toMatchObject({ outcome: 'failed', reasons: ['verifier_unreachable'] });
      expect(k.state.outbox.size.entries).toBe(0);
    } finally {
      node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'session-verifier', protocolVersion: 5 });
      await node.start();
    }
    // With the verifier there, the same site gets its nonce and a verdict.
    const r2 = await run(k).done;
    expect(r2.outcome).toBe('match');
  }, 60_000);

  it('an iris session on the virtual USB HID iris camera', async () => {
    const dir = await tempDir('bk-session-iris-');
    const { files } = await synthesizeIrisDataset({ out: dir, eyes: 1, samples: 2, seed: 5 });
    const iris = await IrisEngine.create();
    try {
      const enrol = await iris.extract(await readFile(files[0]!));
      const w = await openVerifier(join(dir, 'verifier'), { allowedModels: [(enrol.info['model'] as { sha256: string }).sha256] });
      await w.store.enroll({ subject: 'alice', modality: 'iris', template: enrol.template, templateFormat: 'biokiosk-iris/1', modelSha256: (enrol.info['model'] as { sha256: string }).sha256 });
      const n = new VerifierNode(w.verifier, w.store, { brokerUrl: broker.url, clientId: 'iris-verifier', protocolVersion: 5 });
      await node.stop();
      await n.start();
      try {
        const binding = new VirtualHidBinding();
        binding.attach(new VirtualIrisCamera({ images: await loadIrisImages([files[1]!]), reportRate: 20_000 }));
        const device = await IrisCaptureDevice.fromCamera(await IrisCamera.open(binding, { stallMs: 500 }));
        const k = await startKiosk(broker.url, w, 'kiosk-iris', { capture: [{ modality: 'iris', device }], engines: { iris }, policy: { nonce: 'never' } });
        kiosks.push(k);
        await waitFor(() => k.relay.connected, 10_000, 'kiosk-iris connected');
        const events: SessionEvent[] = [];
        const s = k.kiosk.session();
        s.on('event', (e) => events.push(e));
        s.begin();
        s.identify('alice');
        const r = await s.done;
        expect(r).toMatchObject({ outcome: 'match', modality: 'iris' });
        const capture = events.find((e) => e.type === 'transition' && e.to === 'capture') as { payload: { prompt: string } };
        expect(capture.payload.prompt).toBe('look_into_iris_camera');
      } finally {
        await n.stop();
        await w.close();
      }
    } finally {
      await iris.close();
    }
  }, 120_000);
});
