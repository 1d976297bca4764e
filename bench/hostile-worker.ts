/**
 * Issue 10 benchmarks, run by bench/run.ts in their own process (prints one JSON line):
 * - flood: honest kiosks' attempt-to-verdict latency (attest, relay, verify, decrypt, match, log, verdict back
 *   and opened), one attempt at a time, on the fleet broker (mutual TLS, access rules, per-client rate limit),
 *   while a compromised kiosk's process publishes 10,000 junk messages on its own topic as fast as it can,
 *   several rounds: the verifier's intake alone, with the quarantine, and with the quarantine on the same broker
 *   without the rate limit; next to the same attempts without the flood;
 * - tls: one verifier node's throughput end to end (50 kiosks' connections, in a process of their own,
 *   publishing pre-made attestations; verdicts counted as they are published), on a plain-text mosquitto and on
 *   the fleet broker, alternating rounds.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { VerifierNode } from '../verifier/node.ts';
import { Quarantine } from '../verifier/quarantine.ts';
import { BrokerAdmin } from '../verifier/registry/broker-admin.ts';
import { openVerifier } from '../verifier/setup.ts';
import { signedMessage } from '../test/helpers/attest.ts';
import { faceTemplate, MODEL, startKiosk, startVerifier, waitFor, type TestKiosk } from '../test/helpers/e2e.ts';
import { FleetBroker } from '../test/helpers/fleet-broker.ts';
import { Mosquitto } from '../test/helpers/mosquitto.ts';

const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))]!;
const median = (a: number[]) => pct(a, 0.5);
const dir = (p: string) => mkdtemp(join(tmpdir(), p));
const WORKERS = Math.max(1, availableParallelism() - 1); // as `biokiosk verifier run` by default
const JUNK = Number(process.env['BENCH_FLOOD_JUNK'] ?? 10_000);
const ROUNDS = Number(process.env['BENCH_FLOOD_ROUNDS'] ?? 5);
const DEVICES = 50;
const PER = Number(process.env['BENCH_TLS_PER_DEVICE'] ?? 40);
const result: Record<string, unknown> = {};

// Honest attempts come one at a time, from kiosks taking turns: one kiosk alone would check in a hundred people a
// second, over the fleet broker's per-client rate (and its own relay's pace).
const HONEST = ['honest-0', 'honest-1', 'honest-2', 'honest-3'];
let turn = 0;
async function attempt(kiosks: TestKiosk[]): Promise<number> {
  const k = kiosks[turn++ % kiosks.length]!;
  const t0 = performance.now();
  const before = k.verdicts.length;
  await k.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
  k.relay.nudge();
  await new Promise<void>((resolve) => {
    const check = () => (k.verdicts.length > before ? resolve() : setImmediate(check));
    check();
  });
  return performance.now() - t0;
}

const tputDevices = Array.from({ length: DEVICES }, (_, d) => `tput-${d}`);
const ADMIN_PASSWORD = 'a long random password for the bench node';
const broker = await FleetBroker.start({ devices: [...HONEST, 'rogue', ...tputDevices], verifiers: ['verifier-1'], admins: [{ id: 'bench-node', password: ADMIN_PASSWORD }] });
// The same fleet configuration without the rate-limit plugin: how the flood fares on the verifier's defences alone.
const unlimitedBroker = await FleetBroker.start({ devices: HONEST.map((id) => `u-${id}`).concat('rogue'), verifiers: ['verifier-1'], admins: [{ id: 'bench-node', password: ADMIN_PASSWORD }], rateLimit: false });
const plain = await Mosquitto.start();
try {
  // --- flood ---------------------------------------------------------------------------------------------
  if (process.env['BENCH_HOSTILE_ONLY'] !== 'tls') {
    const v = await openVerifier(await dir('bk-bench-h-'), { allowedModels: [MODEL.sha256], precheckWorkers: WORKERS });
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const rogueKey = SoftwareKeyStore.ephemeral();
    await v.store.registerDevice({ ueid: 'rogue', kid: rogueKey.kid, publicJwk: rogueKey.publicJwk as never, site: 'bench' });
    let floodStart = 0;
    // A lane: a broker, its honest kiosks, the rogue's publisher process, and the verifier's nodes on it (the same
    // verifier and store): the intake alone, and with the quarantine as `verifier run --broker-admin` (its own
    // admin login on the broker's password listener, connected ahead of need as the CLI does).
    const lane = async (b: FleetBroker, prefix: string) => {
      const admin = new BrokerAdmin(b.passwordUrl, { ca: readFileSync(b.caPath), rejectUnauthorized: true, username: 'admin:bench-node', password: ADMIN_PASSWORD });
      const quarantineAt: number[] = [];
      const quarantine = new Quarantine(v.store, admin, undefined, { onQuarantine: () => void quarantineAt.push(performance.now() - floodStart) });
      quarantine.start();
      const intake = new VerifierNode(v.verifier, v.store, { brokerUrl: b.url, clientId: `bench-verifier-${prefix}`, protocolVersion: 5, mqtt: b.tls('verifiers', 'verifier-1') });
      const guarded = new VerifierNode(v.verifier, v.store, { brokerUrl: b.url, clientId: `bench-verifier-q-${prefix}`, protocolVersion: 5, mqtt: b.tls('verifiers', 'verifier-1'), quarantine });
      const kiosks: TestKiosk[] = [];
      for (const id of HONEST) kiosks.push(await startKiosk(b.url, v, `${prefix}${id}`, { mqtt: b.tls('devices', `${prefix}${id}`) }));
      await waitFor(() => kiosks.every((k) => k.relay.connected), 10_000, 'kiosks connected');
      const f = b.files('devices', 'rogue');
      const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'junk-publisher.ts'), JSON.stringify({ url: b.url, ca: f.ca, cert: f.cert, key: f.key, ueid: 'rogue', kid: rogueKey.kid, count: JUNK })], { stdio: ['pipe', 'pipe', 'inherit'] });
      const lines: string[] = [];
      child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().trim().split('\n')));
      await waitFor(() => lines.includes('ready'), 30_000, 'the junk publisher');
      return { broker: b, admin, quarantine, quarantineAt, intake, guarded, kiosks, child, lines };
    };
    type Lane = Awaited<ReturnType<typeof lane>>;
    const limited = await lane(broker, '');
    const unlimited = await lane(unlimitedBroker, 'u-');
    // One node at a time on a stream.
    const flood = async (l: Lane, n: VerifierNode, round: number, label: string) => {
      await n.start();
      for (let i = 0; i < 20; i++) await attempt(l.kiosks); // warm-up (and the subscription settled)
      const received0 = n.stats.received;
      const done0 = l.lines.length;
      const ms: number[] = [];
      l.child.stdin!.write('go\n');
      const t0 = performance.now();
      floodStart = t0;
      // From the moment the publisher starts until it is done (acknowledged, refused, or cut off) and the verifier
      // has decided or dropped everything the broker passed on.
      while (l.lines.length === done0 || n.queued > 0) {
        const one = await attempt(l.kiosks);
        ms.push(one);
        if (process.env['BENCH_TRACE']) process.stderr.write(`${label} round ${round} at ${(performance.now() - t0).toFixed(0)} ms: ${one.toFixed(1)} ms (queued ${n.queued}, received ${n.stats.received - received0})\n`);
      }
      await n.settled();
      const publisher = JSON.parse(l.lines.at(-1)!) as { sent: number; accepted: number; refused: number; ms: number; cutOff: boolean };
      // What the verifier read besides the honest attempts: the junk the broker passed on.
      const received = n.stats.received - received0;
      await n.stop();
      return { ms, publisher, junkReceived: received - ms.length };
    };
    const quiet: number[] = [];
    const runs = { intake: [] as Array<Awaited<ReturnType<typeof flood>>>, guarded: [] as Array<Awaited<ReturnType<typeof flood>>>, unlimited: [] as Array<Awaited<ReturnType<typeof flood>>> };
    await limited.intake.start();
    for (let i = 0; i < 20; i++) await attempt(limited.kiosks);
    for (let round = 0; round < ROUNDS; round++) {
      // Without the flood.
      for (let i = 0; i < 60; i++) quiet.push(await attempt(limited.kiosks));
      await limited.intake.stop();
      runs.intake.push(await flood(limited, limited.intake, round, 'intake'));
      runs.guarded.push(await flood(limited, limited.guarded, round, 'quarantine'));
      // The quarantine's end, early (the store is shared: the other lane's node would take it as its own): each
      // flood starts from a released login.
      await limited.quarantine.release('rogue');
      runs.unlimited.push(await flood(unlimited, unlimited.guarded, round, 'no rate limit'));
      await unlimited.quarantine.release('rogue');
      await limited.intake.start();
    }
    await limited.intake.stop();
    const summary = (r: Array<Awaited<ReturnType<typeof flood>>>) => {
      const ms = r.flatMap((x) => x.ms);
      return { n: ms.length, p50: pct(ms, 0.5), p99: pct(ms, 0.99), max: Math.max(...ms), acceptedByBroker: median(r.map((x) => x.publisher.accepted)), junkReceived: median(r.map((x) => x.junkReceived)), cutOff: r.filter((x) => x.publisher.cutOff).length };
    };
    result['flood'] = {
      junkPerRound: JUNK,
      rounds: ROUNDS,
      quiet: { n: quiet.length, p50: pct(quiet, 0.5), p99: pct(quiet, 0.99), max: Math.max(...quiet) },
      flooded: summary(runs.intake),
      quarantined: { ...summary(runs.guarded), quarantines: limited.quarantineAt.length, dropped: limited.guarded.stats.dropped },
      unlimited: { ...summary(runs.unlimited), quarantines: unlimited.quarantineAt.length, quarantinedAfterMs: median(unlimited.quarantineAt), publishRatePerSecond: median(runs.unlimited.map((x) => JUNK / (x.publisher.ms / 1000))), dropped: unlimited.guarded.stats.dropped },
      logEntries: await v.store.audit.size(),
      honestAttempts: quiet.length + 20 + ROUNDS * 3 * 20 + runs.intake.concat(runs.guarded, runs.unlimited).reduce((t, x) => t + x.ms.length, 0),
      dropped: limited.intake.stats.dropped,
      refused: (await v.store.rejectionReport()).counts,
      // Floods the broker's rate limit cut off (the quarantine's own cuts come later, once the burst is read).
      brokerDisconnects: runs.intake.concat(runs.guarded).filter((x) => x.publisher.cutOff).length,
    };
    for (const l of [limited, unlimited]) {
      l.child.kill();
      for (const k of l.kiosks) await k.stop();
      await l.admin.close();
    }
    await v.close();
  }

  // --- tls -----------------------------------------------------------------------------------------------
  if (process.env['BENCH_HOSTILE_ONLY'] !== 'flood') {
    const { v, node } = await startVerifier(plain.url, await dir('bk-bench-t-'), { precheckWorkers: WORKERS });
    await node.stop();
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const keys = tputDevices.map(() => SoftwareKeyStore.ephemeral());
    for (const [i, ueid] of tputDevices.entries()) await v.store.registerDevice({ ueid, kid: keys[i]!.kid, publicJwk: keys[i]!.publicJwk as never, site: 'bench' });
    let seq = 0;
    const make = async (): Promise<string> => {
      const msgs: Array<{ ueid: string; topic: string; payload: string }> = [];
      for (let s = 0; s < PER; s++) {
        for (const [d, ueid] of tputDevices.entries()) {
          const m = (await signedMessage(v.keys.fleet.publicJwk, keys[d]!, { ueid, seq: seq + s + 1, template: faceTemplate(1, 0.03) })).msg;
          msgs.push({ ueid, topic: m.topic, payload: m.payload.toString('base64') });
        }
      }
      seq += PER;
      const file = join(await dir('bk-bench-msgs-'), 'round.json');
      await writeFile(file, JSON.stringify(msgs));
      return file;
    };
    // One publisher process per broker, each given its rounds' files up front.
    const ROUNDS_TLS = Number(process.env['BENCH_TLS_ROUNDS'] ?? 5);
    const files = { plain: [] as string[], tls: [] as string[] };
    for (let r = 0; r <= ROUNDS_TLS; r++) files.plain.push(await make());
    for (let r = 0; r < ROUNDS_TLS; r++) files.tls.push(await make());
    const publisher = async (url: string, pki: string | null, rounds: string[]) => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'load-publisher.ts'), JSON.stringify({ url, pki, rounds })], { stdio: ['pipe', 'pipe', 'inherit'] });
      const lines: string[] = [];
      child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().trim().split('\n')));
      await waitFor(() => lines.includes('ready'), 30_000, 'a load publisher');
      return { child, lines };
    };
    const pubs = { plain: await publisher(plain.url, null, files.plain), tls: await publisher(broker.url, join(broker.dir, 'pki'), files.tls) };
    const once = async (which: 'plain' | 'tls') => {
      const url = which === 'plain' ? plain.url : broker.url;
      let answered = 0;
      const n = new VerifierNode(v.verifier, v.store, { brokerUrl: url, clientId: 'bench-verifier', protocolVersion: 5, mqtt: which === 'plain' ? {} : broker.tls('verifiers', 'verifier-1'), onVerdict: (r) => void (r.verdict && answered++) });
      await n.start();
      const total = DEVICES * PER;
      const p = pubs[which];
      const done = p.lines.length;
      const t0 = performance.now();
      p.child.stdin!.write('go\n');
      await waitFor(() => answered >= total && p.lines.length > done, 120_000, 'all verdicts');
      const rate = total / ((performance.now() - t0) / 1000);
      await n.stop();
      return rate;
    };
    const plainRates: number[] = [];
    const tlsRates: number[] = [];
    await once('plain'); // warm-up (JIT, workers, connections)
    for (let round = 0; round < ROUNDS_TLS; round++) {
      plainRates.push(await once('plain'));
      tlsRates.push(await once('tls'));
    }
    pubs.plain.child.kill();
    pubs.tls.child.kill();
    result['tls'] = { attestationsPerRound: DEVICES * PER, devices: DEVICES, workers: WORKERS, plainRounds: plainRates, tlsRounds: tlsRates, plainPerSecond: median(plainRates), tlsPerSecond: median(tlsRates), ratio: median(tlsRates) / median(plainRates), pairedRatio: median(tlsRates.map((r, i) => r / plainRates[i]!)) };
    await v.close();
  }
} finally {
  await broker.stop();
  await unlimitedBroker.stop();
  await plain.stop();
}
process.stdout.write(JSON.stringify(result) + '\n');
