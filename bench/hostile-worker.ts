/**
 * Issue 10 benchmarks, run by bench/run.ts in their own process (prints one JSON line):
 * - flood: an honest kiosk's attempt-to-verdict latency (attest, relay, verify, decrypt, match, log, verdict back
 *   and opened), one attempt at a time, on the fleet broker (mutual TLS, access rules), while a compromised
 *   kiosk's process publishes 10,000 junk messages on its own topic as fast as it can, several rounds; next to
 *   the same attempts without the flood;
 * - tls: one verifier node's throughput end to end (50 kiosks' connections publishing pre-made attestations,
 *   verdicts counted as they are published), on a plain-text mosquitto and on the fleet broker, alternating rounds.
 */
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { VerifierNode } from '../verifier/node.ts';
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

async function attempt(k: TestKiosk): Promise<number> {
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
const broker = await FleetBroker.start({ devices: ['honest', 'rogue', ...tputDevices], verifiers: ['verifier-1'] });
const plain = await Mosquitto.start();
try {
  // --- flood ---------------------------------------------------------------------------------------------
  {
    const { v, node } = await startVerifier(broker.url, await dir('bk-bench-h-'), { precheckWorkers: WORKERS, mqtt: broker.tls('verifiers', 'verifier-1') });
    v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const rogueKey = SoftwareKeyStore.ephemeral();
    v.store.registerDevice({ ueid: 'rogue', kid: rogueKey.kid, publicJwk: rogueKey.publicJwk as never, site: 'bench' });
    const k = await startKiosk(broker.url, v, 'honest', { mqtt: broker.tls('devices', 'honest') });
    await waitFor(() => k.relay.connected, 10_000, 'kiosk connected');
    const f = broker.files('devices', 'rogue');
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'junk-publisher.ts'), JSON.stringify({ url: broker.url, ca: f.ca, cert: f.cert, key: f.key, ueid: 'rogue', kid: rogueKey.kid, count: JUNK })], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: string[] = [];
    child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().trim().split('\n')));
    await waitFor(() => lines.includes('ready'), 30_000, 'the junk publisher');
    for (let i = 0; i < 20; i++) await attempt(k); // warm-up
    const quiet: number[] = [];
    const flooded: number[] = [];
    const publishMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Without the flood.
      for (let i = 0; i < 60; i++) quiet.push(await attempt(k));
      // With it: from the moment the publisher starts until the verifier has received every junk message.
      const received0 = node.stats.received;
      const done0 = lines.length;
      child.stdin!.write('go\n');
      while (node.stats.received - received0 < JUNK || lines.length === done0) flooded.push(await attempt(k));
      publishMs.push((JSON.parse(lines.at(-1)!) as { ms: number }).ms);
      await node.settled();
    }
    child.kill();
    result['flood'] = {
      junkPerRound: JUNK,
      rounds: ROUNDS,
      publishRatePerSecond: median(publishMs.map((ms) => JUNK / (ms / 1000))),
      quiet: { n: quiet.length, p50: pct(quiet, 0.5), p99: pct(quiet, 0.99), max: Math.max(...quiet) },
      flooded: { n: flooded.length, p50: pct(flooded, 0.5), p99: pct(flooded, 0.99), max: Math.max(...flooded) },
      logEntries: v.audit.size,
      honestAttempts: quiet.length + flooded.length + 20,
      dropped: node.stats.dropped,
      refused: v.store.rejectionReport().counts,
    };
    await k.stop();
    await node.stop();
    await v.close();
  }

  // --- tls -----------------------------------------------------------------------------------------------
  {
    const { v, node } = await startVerifier(plain.url, await dir('bk-bench-t-'), { precheckWorkers: WORKERS });
    await node.stop();
    v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const keys = tputDevices.map((ueid) => {
      const ks = SoftwareKeyStore.ephemeral();
      v.store.registerDevice({ ueid, kid: ks.kid, publicJwk: ks.publicJwk as never, site: 'bench' });
      return ks;
    });
    let seq = 0;
    const make = async () => {
      const perDevice: Array<Array<{ topic: string; payload: Buffer }>> = [];
      for (const [d, ueid] of tputDevices.entries()) {
        const msgs = [];
        for (let s = 0; s < PER; s++) msgs.push((await signedMessage(v.keys.fleet.publicJwk, keys[d]!, { ueid, seq: seq + s + 1, template: faceTemplate(1, 0.03) })).msg);
        perDevice.push(msgs);
      }
      seq += PER;
      return perDevice;
    };
    const once = async (url: string, opts: (kind: 'devices' | 'verifiers', id: string) => Partial<IClientOptions>) => {
      const msgs = await make();
      let answered = 0;
      const n = new VerifierNode(v.verifier, v.store, { brokerUrl: url, clientId: 'bench-verifier', protocolVersion: 5, mqtt: opts('verifiers', 'verifier-1'), onVerdict: (r) => void (r.verdict && answered++) });
      await n.start();
      const pubs: MqttClient[] = await Promise.all(tputDevices.map((ueid) => mqtt.connectAsync(url, { protocolVersion: 5, clientId: ueid, ...opts('devices', ueid) })));
      const total = DEVICES * PER;
      const t0 = performance.now();
      await Promise.all(pubs.map((p, d) => Promise.all(msgs[d]!.map((m) => p.publishAsync(m.topic, m.payload, { qos: 1 })))));
      await waitFor(() => answered >= total, 120_000, 'all verdicts');
      const rate = total / ((performance.now() - t0) / 1000);
      await Promise.all(pubs.map((p) => p.endAsync()));
      await n.stop();
      return rate;
    };
    const plainRates: number[] = [];
    const tlsRates: number[] = [];
    await once(plain.url, () => ({})); // warm-up (JIT, workers)
    for (let round = 0; round < 3; round++) {
      plainRates.push(await once(plain.url, () => ({})));
      tlsRates.push(await once(broker.url, (kind, id) => broker.tls(kind, id)));
    }
    result['tls'] = { attestationsPerRound: DEVICES * PER, devices: DEVICES, workers: WORKERS, plainRounds: plainRates, tlsRounds: tlsRates, plainPerSecond: median(plainRates), tlsPerSecond: median(tlsRates), ratio: median(tlsRates) / median(plainRates) };
    await v.close();
  }
} finally {
  await broker.stop();
  await plain.stop();
}
process.stdout.write(JSON.stringify(result) + '\n');
