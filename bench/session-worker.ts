/**
 * Issue 11 benchmark, run by bench/run.ts in its own process (prints one JSON line): verification sessions from
 * start to verdict through a local mosquitto and a verifier in this process, with the virtual devices: the
 * virtual camera (ffmpeg MJPEG pipe) for face, the virtual ZFM module (a pty, no baud pacing) for fingerprint.
 * The site asks for a nonce when online, so the challenge round trip is in. Per state: median and p95; and the
 * sum of everything but capture and extraction (the goal: <= 15 ms at p50, receipt checks included).
 */
import { readFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { CameraCaptureDevice } from '../device/capture/camera.ts';
import { FingerprintCaptureDevice } from '../device/capture/fingerprint.ts';
import type { SessionState } from '../device/session/events.ts';
import { VirtualFingerprintSensor } from '../drivers/virtual/fingerprint-sensor.ts';
import { FaceEngine } from '../models/face/engine.ts';
import { FingerprintEngine } from '../models/fingerprint/engine.ts';
import { synthesizeFingerprintDataset } from '../models/fingerprint/synth/index.ts';
import { VerifierNode } from '../verifier/node.ts';
import { openVerifier } from '../verifier/setup.ts';
import { startKiosk, waitFor } from '../test/helpers/e2e.ts';
import { samplePath } from '../test/helpers/fixtures.ts';
import { Mosquitto } from '../test/helpers/mosquitto.ts';

const N = Number(process.env['BENCH_SESSIONS'] ?? 40);
const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))]!;
const STATES: SessionState[] = ['identify', 'challenge', 'capture', 'extract', 'attest', 'awaiting_verdict', 'result'];
const OVERHEAD: SessionState[] = ['identify', 'challenge', 'attest', 'awaiting_verdict', 'result'];

const dir = await mkdtemp(join(tmpdir(), 'bk-bench-session-'));
const broker = await Mosquitto.start();
const face = await FaceEngine.create();
const finger = await FingerprintEngine.create();
const sensors: VirtualFingerprintSensor[] = [];
const result: Record<string, unknown> = { sessions: N };
try {
  const set = await synthesizeFingerprintDataset({ out: join(dir, 'fingers'), fingers: 1, impressions: 2, seed: 11, workers: 0 });
  const photo = join(dir, 'alice.jpg');
  await sharp(samplePath(2)).rotate().extract({ left: 960, top: 40, width: 900, height: 900 }).resize(640, 640).jpeg().toFile(photo);
  const v = await openVerifier(join(dir, 'verifier'), { allowedModels: [face.pipeline.model.sha256, finger.model.sha256] });
  await v.store.enroll({ subject: 'alice', modality: 'face', template: (await face.extract(await readFile(samplePath(2)))).template, templateFormat: 'biokiosk-face/1', modelSha256: face.pipeline.model.sha256 });
  await v.store.enroll({ subject: 'alice', modality: 'fingerprint', template: (await finger.extract(await readFile(set.files[0]!))).template, templateFormat: 'biokiosk-fingerprint/1', modelSha256: finger.model.sha256 });
  // Sessions back to back, far faster than people: the per-device nonce rate limit (2/s) is lifted for the bench.
  const node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'bench-session-verifier', protocolVersion: 5, intake: { challengeRate: { perSecond: 1000, burst: 1000 } } });
  await node.start();
  const sensor = await VirtualFingerprintSensor.start({ images: [set.files[1]!], baud: 115_200, pacing: false });
  sensors.push(sensor);
  for (const [modality, device] of [
    ['face', new CameraCaptureDevice(`virtual:${photo}?fps=15`)],
    ['fingerprint', new FingerprintCaptureDevice({ path: sensor.path, baudRate: 115_200 })],
  ] as const) {
    const k = await startKiosk(broker.url, v, `bench-${modality}`, { capture: [{ modality, device }], engines: { face, fingerprint: finger }, policy: { nonce: 'when_online' } });
    await waitFor(() => k.relay.connected, 10_000, 'kiosk connected');
    const per: Record<string, number[]> = Object.fromEntries([...STATES, 'overhead', 'total'].map((s) => [s, []]));
    let outcomes = new Map<string, number>();
    for (let i = 0; i < N + 5; i++) {
      const t0 = performance.now();
      const s = k.kiosk.session();
      s.begin();
      s.identify('alice');
      const r = await s.done;
      const total = performance.now() - t0;
      if (i < 5) continue; // warm-up
      outcomes.set(r.outcome, (outcomes.get(r.outcome) ?? 0) + 1);
      for (const st of STATES) per[st]!.push(r.timings[st] ?? 0);
      per['overhead']!.push(OVERHEAD.reduce((a, st) => a + (r.timings[st] ?? 0), 0));
      per['total']!.push(total);
    }
    result[modality] = {
      outcomes: Object.fromEntries(outcomes),
      states: Object.fromEntries(Object.entries(per).map(([st, a]) => [st, { p50: pct(a, 0.5), p95: pct(a, 0.95) }])),
    };
    outcomes = new Map();
    await k.stop();
  }
  await node.stop();
  await v.close();
} finally {
  for (const s of sensors) await s.stop();
  await face.close();
  await finger.close();
  await broker.stop();
}
process.stdout.write(JSON.stringify(result) + '\n');
