/**
 * `biokiosk demo`: the whole path on one machine with no set-up. An embedded MQTT broker (aedes, MQTT 3.1.1)
 * unless --broker is given; a verifier with a temporary store; a kiosk (device/kiosk.ts, the same factory as
 * `biokiosk run`) with the software key store and a virtual device: the virtual camera showing photos (face), or
 * the virtual serial module with synthetic fingers (fingerprint). Enrols a subject, then runs two verification
 * sessions, a genuine attempt and an impostor claiming to be them, printing verdicts and per-stage latencies.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../protocol/runtime.ts';
import type { Command } from 'commander';
import sharp from 'sharp';
import { CameraCaptureDevice } from '../device/capture/camera.ts';
import { FingerprintCaptureDevice } from '../device/capture/fingerprint.ts';
import type { CaptureDevice } from '../device/capture/types.ts';
import { Kiosk } from '../device/kiosk.ts';
import { VirtualFingerprintSensor } from '../drivers/virtual/fingerprint-sensor.ts';
import { createEngine, TEMPLATE_FORMATS } from '../models/engines.ts';
import { faceApiDir } from '../models/face/convert.ts';
import { synthesizeFingerprintDataset } from '../models/fingerprint/synth/index.ts';
import { brokerConnectOptions } from '../protocol/broker-credentials.ts';
import { formatVkey } from '../protocol/note.ts';
import { BiokioskError, UsageError } from '../protocol/errors.ts';
import { CounterScreen } from '../device/ui/controller.ts';
import { serveScreen } from '../device/ui/server.ts';
import { loadDecisionPolicy } from '../verifier/decision-policy.ts';
import { CsvEligibilitySource } from '../verifier/eligibility.ts';
import { VerifierNode } from '../verifier/node.ts';
import { openVerifier } from '../verifier/setup.ts';
import { parseNumber, printJson } from './options.ts';

interface DemoOptions {
  json?: boolean;
  broker?: string;
  mqttVersion?: string;
  keep?: boolean;
  tpm?: string;
  /** A folder laid out as scripts/dev-pki.sh writes it: ca.pem, devices/demo-kiosk-1.*, verifiers/verifier-1.*. */
  pki?: string;
  modality?: string;
  screen?: string | true;
  siteKind?: string;
}

/** The example configuration the screen demo runs with (and README describes). */
// From the package root: the same files whether this runs from the sources or from dist/.
export const EXAMPLE_POLICY = join(PACKAGE_ROOT, 'deploy', 'policy', 'decision-policy.json');
export const EXAMPLE_ELIGIBILITY = join(PACKAGE_ROOT, 'deploy', 'policy', 'eligibility.csv');

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Run the whole path locally: enrol a face, then verify a genuine and an impostor attempt through MQTT.')
    .option('--broker <url>', 'use this MQTT broker instead of the embedded one (e.g. mqtt://127.0.0.1:1883)')
    .option('--mqtt-version <4|5>', 'MQTT protocol version (default: 4 with the embedded broker, 5 with --broker)')
    .option('--keep', 'keep the temporary folder (keys, stores, audit log) and print where it is')
    .option('--tpm <setting>', "sign with a key in this TPM (e.g. swtpm:host=127.0.0.1,port=2321) instead of the development key file")
    .option('--modality <m>', 'face (the virtual camera with photos) or fingerprint (the virtual serial module with synthetic fingers)', 'face')
    .option('--pki <dir>', 'for an mqtts:// fleet broker: the CA and the two identities the demo needs, laid out as scripts/dev-pki.sh writes them (ca.pem, devices/demo-kiosk-1.pem/.key, verifiers/verifier-1.pem/.key)')
    .option('--screen [port]', 'instead of the two scripted attempts: serve the counter screen on http://127.0.0.1:PORT/ (default 7380; 0: any free port) with the example decision policy and eligibility table (deploy/policy/), until Ctrl-C')
    .option('--site-kind <kind>', 'with --screen: pharmacy (the pharmacist\'s view) or hospital (the patient\'s check-in, with eligibility)', 'pharmacy')
    .option('--json', 'print one JSON object')
    .action(async (o: DemoOptions) => {
      if (o.screen !== undefined) return runScreenDemo(o);
      const result = await runDemo(o);
      if (o.json) printJson(result);
      else printHuman(result);
    });
}

interface Attempt {
  name: 'genuine' | 'impostor';
  claimedSubject: string;
  photo: string;
  decision: string;
  reasons: string[];
  score: number | null;
  quality: number;
  latencyMs: { capture: number; extract: number; sign: number; relay: number; verify: number; total: number };
  receipt: { leafIndex: number; treeSize: number };
}

export interface DemoResult {
  ok: true;
  modality: 'face' | 'fingerprint';
  broker: string;
  mqttVersion: 4 | 5;
  camera: string;
  enrolled: { subject: string; photo: string; quality: number };
  attempts: Attempt[];
  auditLogEntries: number;
  /** Audit-log tree heads the kiosk accepted (each verdict's receipt checked, consistency proven). */
  treeHeadsKept: number;
  folder: string | null;
  /** Which key store signed, where. */
  keyStore: string;
  keyStoreWarning: string | null;
}

async function startEmbeddedBroker(): Promise<{ url: string; close: () => Promise<void> }> {
  const { default: Aedes } = (await import('aedes')) as unknown as { default: new () => { handle: (s: unknown) => void; close: (cb: () => void) => void } };
  const aedes = new Aedes();
  const server: Server = createServer(aedes.handle as never);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close();
        aedes.close(() => r());
      }),
  };
}

function hasFfmpeg(): boolean {
  return spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;
}

/** The people who step up to the kiosk, and who was enrolled, for one modality. */
interface Cast {
  modality: 'face' | 'fingerprint';
  enrolPhoto: string;
  people: Array<{ name: 'genuine' | 'impostor'; photo: string }>;
  /** A capture device that shows `photo` to the kiosk. */
  deviceFor(photo: string): Promise<CaptureDevice>;
  camera: string;
  close(): Promise<void>;
}

async function faceCast(folder: string): Promise<Cast> {
  const samples = join(faceApiDir(), 'demo');
  const enrolPhoto = join(samples, 'sample2.jpg');
  // Alice again at the kiosk (a new capture: reframed, other light), then someone else.
  const genuinePhoto = join(folder, 'alice-at-the-kiosk.jpg');
  const meta = await sharp(enrolPhoto).rotate().metadata();
  await writeFile(genuinePhoto, await sharp(enrolPhoto).rotate().extract({ left: 900, top: 0, width: (meta.autoOrient?.width ?? meta.width!) - 900, height: 1000 }).modulate({ brightness: 1.1 }).jpeg({ quality: 80 }).toBuffer());
  const useFfmpeg = hasFfmpeg();
  return {
    modality: 'face',
    enrolPhoto,
    people: [
      { name: 'genuine', photo: genuinePhoto },
      { name: 'impostor', photo: join(samples, 'sample6.jpg') },
    ],
    // A person steps up: the camera starts (ffmpeg's start-up is part of "capture"). Without ffmpeg, a folder
    // holding the photo is the camera.
    async deviceFor(photo) {
      if (useFfmpeg) return new CameraCaptureDevice(`virtual:${photo}?fps=10&width=1280&height=960`, { model: 'virtual-camera', serial: 'vcam-0001' });
      const dir = await mkdtemp(join(folder, 'camera-'));
      await writeFile(join(dir, 'frame.jpg'), await sharp(photo).jpeg().toBuffer());
      return new CameraCaptureDevice(`dir:${dir}`, { model: 'virtual-camera', serial: 'vcam-0001' });
    },
    camera: useFfmpeg ? 'virtual camera (ffmpeg MJPEG pipe)' : 'image files (ffmpeg not installed: the virtual camera needs it)',
    close: async () => {},
  };
}

/** Synthetic fingers on the virtual serial module (a ZFM protocol peer behind a pty, as a real R307 would be). */
async function fingerprintCast(folder: string): Promise<Cast> {
  const out = join(folder, 'fingers');
  const set = await synthesizeFingerprintDataset({ out, fingers: 2, impressions: 2, seed: 11, workers: 0 });
  const [a1, a2, b1] = [set.files.find((f) => /1_1\.png$/.test(f))!, set.files.find((f) => /1_2\.png$/.test(f))!, set.files.find((f) => /2_1\.png$/.test(f))!];
  let sensor: VirtualFingerprintSensor | null = null;
  return {
    modality: 'fingerprint',
    enrolPhoto: a1,
    people: [
      { name: 'genuine', photo: a2 },
      { name: 'impostor', photo: b1 },
    ],
    async deviceFor(photo) {
      await sensor?.stop();
      // No baud pacing: the module answers at once instead of the 3.5 s an image takes at 115200 baud.
      sensor = await VirtualFingerprintSensor.start({ images: [photo], baud: 115_200, pacing: false });
      return new FingerprintCaptureDevice({ path: sensor.path, baudRate: 115_200, sensor: { model: 'virtual R307', serial: 'vfp-0001' } });
    },
    camera: 'virtual fingerprint module (ZFM protocol over a pty)',
    close: async () => {
      await sensor?.stop();
    },
  };
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const version = o.mqttVersion === undefined ? (o.broker ? 5 : 4) : Number(o.mqttVersion);
  if (version !== 4 && version !== 5) throw new UsageError(`--mqtt-version must be 4 or 5, got ${o.mqttVersion}`);
  const modality = o.modality ?? 'face';
  if (modality !== 'face' && modality !== 'fingerprint') throw new UsageError(`--modality takes face or fingerprint, got "${modality}"`);
  if (o.pki !== undefined && o.broker === undefined) throw new UsageError('--pki is for a fleet broker given with --broker mqtts://...');
  if (o.pki === undefined && o.broker !== undefined && /^(mqtts|wss):/i.test(o.broker)) throw new UsageError(`${o.broker} is a TLS broker: give --pki DIR with its CA and the demo's identities (scripts/dev-pki.sh DIR --device demo-kiosk-1 --verifier verifier-1)`);
  const ueid = 'demo-kiosk-1';
  // The demo is two parties on the broker, a verifier and a kiosk: each connects under its own identity.
  const identity = (kind: 'devices' | 'verifiers', id: string) =>
    o.broker ? brokerConnectOptions(o.broker, o.pki === undefined ? {} : { ca: join(o.pki, 'ca.pem'), cert: join(o.pki, kind, `${id}.pem`), key: join(o.pki, kind, `${id}.key`) }) : Promise.resolve({});
  const verifierMqtt = await identity('verifiers', 'verifier-1');
  const kioskMqtt = await identity('devices', ueid);
  const folder = await mkdtemp(join(tmpdir(), 'biokiosk-demo-'));
  const embedded = o.broker ? null : await startEmbeddedBroker();
  const brokerUrl = o.broker ?? embedded!.url;
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const cast = modality === 'face' ? await faceCast(folder) : await fingerprintCast(folder);
    cleanups.push(() => cast.close());
    const engine = await createEngine(modality);
    cleanups.push(() => engine.close());
    const enrol = await engine.extract(await readFile(cast.enrolPhoto));
    const model = enrol.info['model'] as { name: string; sha256: string };
    // The verifier: keys, store, audit log; it trusts templates from this engine's model only.
    const v = await openVerifier(join(folder, 'verifier'), { allowedModels: [model.sha256] });
    cleanups.push(() => v.close());
    // How long the verifier took over each attestation's batch, and the score (verdicts do not carry it).
    const verifyMs = new Map<string, number>();
    const scores = new Map<string, number | null>();
    const node = new VerifierNode(v.verifier, v.store, {
      brokerUrl,
      clientId: 'demo-verifier',
      mqtt: verifierMqtt,
      protocolVersion: version as 4 | 5,
      onVerdict: (r, _m, ms) => {
        if (!r.attId) return;
        verifyMs.set(r.attId, ms);
        scores.set(r.attId, r.score);
      },
    });
    await node.start();
    cleanups.push(() => node.stop());
    // Enrolment at the counter.
    await v.store.enroll({ subject: 'alice', modality, template: enrol.template, templateFormat: TEMPLATE_FORMATS[modality], modelSha256: model.sha256 });

    // The kiosk, built by the one factory: key store (the software one, development only, unless --tpm), outbox,
    // relay, receipts, the capture device and the engine; registered with the verifier.
    const kiosk = await Kiosk.create({
      dir: join(folder, 'kiosk'),
      ueid,
      site: 'demo-pharmacy',
      keyStore: o.tpm ? { kind: 'tpm', tpm: o.tpm } : { kind: 'software' },
      verifiers: { trusted: [{ id: v.keys.verifierId, publicJwk: v.signer.publicJwk as never }], fleetKey: v.keys.fleet.publicJwk, log: { keys: v.logSigner.verifiers.map(formatVkey) } },
      broker: { url: brokerUrl, protocolVersion: version as 4 | 5, mqtt: kioskMqtt },
      capture: [{ modality, device: await cast.deviceFor(cast.people[0]!.photo) }],
      engines: { [modality]: engine },
      policy: { nonce: 'never', verdictTimeoutMs: 15_000 },
    });
    cleanups.push(() => kiosk.close());
    await v.store.registerDevice({ ueid, kid: kiosk.state.keystore.kid, publicJwk: kiosk.state.keystore.publicJwk as never, site: 'demo-pharmacy' });
    await new Promise<void>((resolve, reject) => {
      if (kiosk.online) return resolve();
      const timer = setTimeout(() => reject(new Error(`cannot connect to the MQTT broker at ${brokerUrl}`)), 10_000);
      kiosk.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
    });

    const attempts: Attempt[] = [];
    for (const [i, person] of cast.people.entries()) {
      if (i > 0) await kiosk.replaceDevice(await cast.deviceFor(person.photo));
      const t0 = performance.now();
      const session = kiosk.session();
      let quality = 0;
      session.on('event', (e) => void (e.type === 'quality' && e.score !== null && (quality = e.score)));
      session.begin();
      session.identify('alice');
      const r = await session.done;
      const total = performance.now() - t0;
      if (!r.verdict || !r.attId) throw new BiokioskError('DemoFailed', `the ${person.name} attempt ended ${r.outcome}${r.reasons.length ? ` (${r.reasons.join(', ')})` : ''}`, { kind: 'internal' });
      const verify = verifyMs.get(r.attId) ?? 0;
      const tm = r.timings;
      attempts.push({
        name: person.name,
        claimedSubject: 'alice',
        photo: person.photo,
        decision: r.verdict.decision,
        reasons: r.reasons,
        score: scores.get(r.attId) ?? null,
        quality,
        latencyMs: { capture: tm.capture ?? 0, extract: tm.extract ?? 0, sign: tm.attest ?? 0, relay: Math.max(0, (tm.awaiting_verdict ?? 0) - verify), verify, total },
        receipt: { leafIndex: r.verdict.claims.receipt.leafIndex, treeSize: r.verdict.claims.receipt.treeSize },
      });
    }
    return {
      ok: true,
      modality,
      broker: o.broker ? brokerUrl : `embedded aedes at ${brokerUrl}`,
      mqttVersion: version as 4 | 5,
      camera: cast.camera,
      enrolled: { subject: 'alice', photo: cast.enrolPhoto, quality: enrol.quality.score },
      attempts,
      auditLogEntries: await v.store.audit.size(),
      treeHeadsKept: kiosk.heads.all().length,
      folder: o.keep ? folder : null,
      keyStore: kiosk.state.keystore.description,
      keyStoreWarning: kiosk.state.keystore.developmentOnly ? 'The kiosk used the SOFTWARE key store (a key file): development and demos only.' : null,
    };
  } finally {
    for (const c of cleanups.reverse()) await c();
    await embedded?.close();
    if (!o.keep) await rm(folder, { recursive: true, force: true });
  }
}

/**
 * `biokiosk demo --screen`: the same parts (embedded broker, verifier, kiosk with the virtual camera) with the
 * example decision policy and eligibility table, and the counter screen served for a browser. The camera shows
 * Alice: "alice" is verified (with her eligibility at the hospital kiosk); "bob" (enrolled from another face) is
 * not; anyone else has no enrolment.
 */
async function runScreenDemo(o: DemoOptions): Promise<void> {
  if (o.siteKind !== 'pharmacy' && o.siteKind !== 'hospital') throw new UsageError(`--site-kind takes pharmacy or hospital, got "${o.siteKind}"`);
  if (o.broker !== undefined || o.modality !== 'face' || o.tpm !== undefined) throw new UsageError('--screen runs on the embedded broker with the face camera (no --broker, --modality, --tpm)');
  const port = o.screen === true ? 7380 : parseNumber('--screen', 0, 65_535, true)(o.screen!);
  const siteKind = o.siteKind;
  const site = `demo-${siteKind}`;
  const folder = await mkdtemp(join(tmpdir(), 'biokiosk-demo-'));
  const broker = await startEmbeddedBroker();
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const cast = await faceCast(folder);
    const engine = await createEngine('face');
    cleanups.push(() => engine.close());
    const model = (await engine.extract(await readFile(cast.enrolPhoto))).info['model'] as { sha256: string };
    const v = await openVerifier(join(folder, 'verifier'), { allowedModels: [model.sha256], policy: await loadDecisionPolicy(EXAMPLE_POLICY), eligibility: await CsvEligibilitySource.open(EXAMPLE_ELIGIBILITY) });
    cleanups.push(() => v.close());
    for (const [subject, photo] of [['alice', cast.enrolPhoto], ['bob', cast.people[1]!.photo]] as const) {
      await v.store.enroll({ subject, modality: 'face', template: (await engine.extract(await readFile(photo))).template, templateFormat: TEMPLATE_FORMATS.face, modelSha256: model.sha256 });
    }
    const node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'demo-verifier', protocolVersion: 4 });
    await node.start();
    cleanups.push(() => node.stop());
    const kiosk = await Kiosk.create({
      dir: join(folder, 'kiosk'),
      ueid: 'demo-kiosk-1',
      site,
      keyStore: { kind: 'software' },
      verifiers: { trusted: [{ id: v.keys.verifierId, publicJwk: v.signer.publicJwk as never }], fleetKey: v.keys.fleet.publicJwk, log: { keys: v.logSigner.verifiers.map(formatVkey) } },
      broker: { url: broker.url, protocolVersion: 4 },
      capture: [{ modality: 'face', device: await cast.deviceFor(cast.people[0]!.photo) }],
      engines: { face: engine },
      policy: { nonce: 'never', consent: 'required', verdictTimeoutMs: 15_000 },
    });
    cleanups.push(() => kiosk.close());
    await v.store.registerDevice({ ueid: 'demo-kiosk-1', kid: kiosk.state.keystore.kid, publicJwk: kiosk.state.keystore.publicJwk as never, site });
    const screen = new CounterScreen(kiosk, { siteKind });
    cleanups.push(() => screen.close());
    const server = await serveScreen(screen, { port });
    cleanups.push(() => server.close());
    screen.on('result', ({ subject, result }) => process.stdout.write(`${subject}: ${result.outcome.toUpperCase()}${result.reasons.length ? ` (${result.reasons.join(', ')})` : ''}\n`));
    process.stdout.write(
      [
        `counter screen (${siteKind}) on ${server.url}`,
        `  open it in a browser (as a kiosk would: chromium --kiosk --app=${server.url})`,
        '  the camera shows Alice: type "alice" (verified), "bob" (not verified: another face is enrolled as bob), anything else (no enrolment)',
        `  decision policy ${EXAMPLE_POLICY}, eligibility ${EXAMPLE_ELIGIBILITY}`,
        '  Ctrl-C to stop',
      ].join('\n') + '\n',
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } finally {
    for (const c of cleanups.reverse()) await c();
    await broker.close();
    if (!o.keep) await rm(folder, { recursive: true, force: true });
  }
}

function printHuman(r: DemoResult): void {
  const f = (v: number) => `${v.toFixed(1)} ms`.padStart(9);
  const lines = [
    `modality  ${r.modality}`,
    `broker    ${r.broker} (MQTT ${r.mqttVersion === 5 ? '5' : '3.1.1'})`,
    `device    ${r.camera}`,
    `enrolled  ${r.enrolled.subject} from ${r.enrolled.photo} (quality ${r.enrolled.quality})`,
    '',
    'attempt   claims  decision  score   quality  capture    extract    sign       relay      verify     total',
  ];
  for (const a of r.attempts) {
    const l = a.latencyMs;
    lines.push(
      `${a.name.padEnd(9)} ${a.claimedSubject.padEnd(7)} ${a.decision.toUpperCase().padEnd(9)} ${(a.score === null ? '-' : a.score.toFixed(3)).padEnd(7)} ${String(a.quality).padEnd(8)}${f(l.capture)}${f(l.extract)}  ${f(l.sign)}  ${f(l.relay)}  ${f(l.verify)}  ${f(l.total)}` +
        (a.reasons.length ? `  reasons: ${a.reasons.join(', ')}` : ''),
    );
  }
  lines.push('', `audit log: ${r.auditLogEntries} entries; each verdict's receipt checked by the kiosk (${r.treeHeadsKept} tree heads kept)`, `key store: ${r.keyStore}`);
  if (r.keyStoreWarning) lines.push(r.keyStoreWarning);
  if (r.folder) lines.push(`state kept in ${r.folder}`);
  process.stdout.write(lines.join('\n') + '\n');
}
