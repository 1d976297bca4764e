/**
 * The fleet broker's per-client rate limit (deploy/mosquitto/rate-limit/, loaded by deploy/mosquitto/fleet.conf),
 * on a real mosquitto with mutual TLS and the dynamic-security rules: a flooding kiosk's excess is refused at the
 * broker and never reaches a verifier, it is disconnected once it keeps going, the other kiosks and the verifiers'
 * own publishes are untouched, an honest kiosk's relay paces itself under the limit, and a bad setting stops the
 * broker with a message naming it.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceTopics, sharedSubscription } from '../protocol/topics.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import { VerifierNode } from '../verifier/node.ts';
import { faceTemplate, MODEL, startKiosk, tempDir, waitFor, type TestKiosk } from './helpers/e2e.ts';
import { FleetBroker, rateLimitPlugin } from './helpers/fleet-broker.ts';
import { freePort, mosquittoBinary } from './helpers/mosquitto.ts';

const RATE = 20;
/** About an attestation's size. */
const PAD = 'x'.repeat(1500);
const BURST = 50;
let broker: FleetBroker;
const clients: MqttClient[] = [];

async function as(kind: 'devices' | 'verifiers', id: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...broker.tls(kind, id) });
  clients.push(c);
  return c;
}

/** Publishes `n` QoS 1 messages without waiting between them; what the broker acknowledged, refused, or never answered (connection closed). */
async function burst(c: MqttClient, topic: string, n: number, tag: string): Promise<{ accepted: number; refused: number[]; unanswered: number }> {
  const refused: number[] = [];
  let accepted = 0;
  const all: Array<Promise<unknown>> = [];
  for (let i = 0; i < n && c.connected; i++) {
    all.push(
      c.publishAsync(topic, `${tag}-${i}-${PAD}`, { qos: 1 }).then(
        () => void accepted++,
        (e: { code?: number }) => void refused.push(e.code ?? -1),
      ),
    );
  }
  await Promise.race([Promise.all(all), new Promise<void>((r) => c.once('close', () => r()))]);
  await new Promise((r) => setTimeout(r, 200));
  return { accepted, refused, unanswered: n - accepted - refused.length };
}

beforeAll(async () => {
  broker = await FleetBroker.start({ devices: ['rogue', 'honest', 'backlog', 'unpaced'], verifiers: ['verifier-1'], rateLimit: { rate: RATE, burst: BURST } });
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await broker?.stop();
});

describe('the fleet broker limits each client on the kiosks topics', () => {
  it('refuses a flood past the burst, never forwards it, disconnects the flooder, and lets the honest kiosk through', async () => {
    const verifier = await as('verifiers', 'verifier-1');
    const seen = { rogue: 0, honest: 0 };
    verifier.on('message', (topic) => void (topic.includes('/rogue/') ? seen.rogue++ : topic.includes('/honest/') && seen.honest++));
    await verifier.subscribeAsync(sharedSubscription('verifiers'), { qos: 1 });
    const rogue = await as('devices', 'rogue');
    const honest = await as('devices', 'honest');
    const honestSent = (async () => {
      for (let i = 0; i < 10; i++) {
        await honest.publishAsync(deviceTopics('honest').attestations, `honest-${i}`, { qos: 1 });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const r = await burst(rogue, deviceTopics('rogue').attestations, 2000, 'junk');
    const said = `the flooder: ${r.accepted} accepted, ${r.refused.length} refused (codes ${[...new Set(r.refused)].join(', ')}), ${r.unanswered} unanswered; broker: ${broker.output.slice(-600)}`;
    await honestSent;
    await waitFor(() => seen.honest === 10, 5000, `the honest kiosk's 10 messages (${seen.honest})`);
    // The burst and what refilled meanwhile, no more; the refusals are MQTT 5's "not authorised".
    expect(r.accepted, said).toBeGreaterThanOrEqual(BURST);
    expect(r.accepted, said).toBeLessThan(BURST + 2 * RATE);
    expect(r.refused.length, said).toBeGreaterThan(0);
    expect(new Set(r.refused), said).toEqual(new Set([135]));
    expect(seen.rogue).toBe(r.accepted);
    // Refused 100 times in a row, it was disconnected there and then: the rest of what it had written was never read.
    await waitFor(() => !rogue.connected, 5000, 'the flooder disconnected');
    expect(r.unanswered, said).toBeGreaterThan(1000);
    expect(broker.output).toMatch(/biokiosk_rate_limit: client rogue disconnected after 100 publishes/);
  });

  it('keeps the bucket across a reconnection, and lets the client publish again once it slows down', async () => {
    const rogue = await as('devices', 'rogue');
    // The bucket refilled for a few hundred milliseconds only: a second burst gets a handful through, not a new 50.
    const r = await burst(rogue, deviceTopics('rogue').attestations, 300, 'again');
    expect(r.accepted).toBeLessThan(BURST * 0.6);
    await new Promise((r2) => setTimeout(r2, 1000));
    const back = await as('devices', 'rogue');
    await expect(back.publishAsync(deviceTopics('rogue').attestations, 'slow', { qos: 1 })).resolves.toBeDefined();
  });

  it('never limits what verifiers publish (verdicts)', async () => {
    const kiosk = await as('devices', 'honest');
    let got = 0;
    kiosk.on('message', () => void got++);
    await kiosk.subscribeAsync(deviceTopics('honest').verdicts, { qos: 1 });
    const verifier = await as('verifiers', 'verifier-1');
    const r = await burst(verifier, deviceTopics('honest').verdicts, 4 * BURST, 'verdict');
    expect(r).toEqual({ accepted: 4 * BURST, refused: [], unanswered: 0 });
    await waitFor(() => got === 4 * BURST, 5000, `all verdicts delivered (${got})`);
  });
});

describe("a kiosk's relay under the limit", () => {
  let v: VerifierInstance;
  let node: VerifierNode;
  const kiosks: TestKiosk[] = [];

  beforeAll(async () => {
    v = await openVerifier(await tempDir('bk-rl-ver-'), { allowedModels: [MODEL.sha256] });
    await v.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    node = new VerifierNode(v.verifier, v.store, { brokerUrl: broker.url, clientId: 'verifier-1', protocolVersion: 5, mqtt: broker.tls('verifiers', 'verifier-1') });
    await node.start();
  });

  afterAll(async () => {
    for (const k of kiosks) await k.stop();
    await node?.stop();
    await v?.close();
  });

  const backlog = async (k: TestKiosk, n: number) => {
    for (let i = 0; i < n; i++) await k.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
    k.relay.nudge();
  };

  it('empties a backlog twice the burst without one refusal when paced under the limit', async () => {
    // The relay's default pace (40/s, 250 at once) sits under fleet.conf's 50/s and 300; this broker's are scaled down, the pace with them.
    const k = await startKiosk(broker.url, v, 'backlog', { mqtt: broker.tls('devices', 'backlog'), publishRate: { perSecond: RATE * 0.8, burst: BURST - 10 } });
    kiosks.push(k);
    await waitFor(() => k.relay.connected, 10_000, 'kiosk connected');
    await backlog(k, 2 * BURST);
    await waitFor(() => k.verdicts.length === 2 * BURST, 30_000, `all ${2 * BURST} verdicts (${k.verdicts.length})`);
    expect(k.relay.stats.refused).toBe(0);
  });

  it('an unpaced relay is refused by the broker and loses nothing: what was refused goes again from the outbox', async () => {
    const k = await startKiosk(broker.url, v, 'unpaced', { mqtt: broker.tls('devices', 'unpaced'), publishRate: { perSecond: 10_000, burst: 10_000 } });
    kiosks.push(k);
    await waitFor(() => k.relay.connected, 10_000, 'kiosk connected');
    const n = BURST + 20;
    await backlog(k, n);
    await waitFor(() => k.relay.stats.refused > 0, 10_000, 'refusals');
    await waitFor(() => k.verdicts.length === n, 30_000, `all ${n} verdicts in the end (${k.verdicts.length}; ${k.relay.stats.refused} refused)`);
    expect(new Set(k.verdicts.map((x) => x.attId)).size).toBe(n);
  });
});

describe('a bad rate-limit setting', () => {
  const start = async (option: string): Promise<{ code: number | null; output: string }> => {
    const dir = await tempDir('bk-rl-conf-');
    const port = await freePort();
    const conf = join(dir, 'm.conf');
    await writeFile(conf, `${process.getuid?.() === 0 ? 'user root\n' : ''}listener ${port} 127.0.0.1\nallow_anonymous true\nplugin ${rateLimitPlugin()}\n${option}\n`);
    const child = spawn(mosquittoBinary(), ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => (child.kill(), resolve(null)), 5000);
      child.once('exit', (c) => (clearTimeout(t), resolve(c)));
    });
    return { code, output };
  };

  it.each([
    ['plugin_opt_rate fast', /plugin_opt_rate must be a positive number, not "fast"/],
    ['plugin_opt_burst 0.5', /plugin_opt_burst must be at least 1/],
    ['plugin_opt_topics biokiosk/#/x', /"biokiosk\/#\/x" is not a valid topic filter/],
    ['plugin_opt_disconnect_after -3', /plugin_opt_disconnect_after must be a whole number/],
    ['plugin_opt_rates 5', /unknown option plugin_opt_rates/],
  ])('%s stops the broker with a message naming it', async (option, message) => {
    const r = await start(option);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.output).toMatch(message);
  });
});
