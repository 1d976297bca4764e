/**
 * The fleet broker as the repository configures it (deploy/mosquitto/fleet.conf: mutual TLS, the CN as username
 * and client id, the dynamic-security access rules of provisioning/broker-security.ts), two real verifier
 * processes (`biokiosk verifier run` with their own certificates) sharing the stream, and kiosks on their own
 * certificates. Each attack is run as a client of that broker would run it, and fails for the attacker.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { encodeBase64url } from '../protocol/base64url.ts';
import { brokerConnectOptions } from '../protocol/broker-credentials.ts';
import { encodeEnvelope } from '../protocol/envelope.ts';
import { deviceTopics } from '../protocol/topics.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import { signedMessage } from './helpers/attest.ts';
import { biokiosk, spawnBiokiosk, type CliProcess } from './helpers/cli.ts';
import { faceTemplate, MODEL, startKiosk, tempDir, waitFor, type TestKiosk, logSize, logRecords } from './helpers/e2e.ts';
import { FleetBroker } from './helpers/fleet-broker.ts';
import { writeFile } from 'node:fs/promises';

const PASSWORD = 'a long random password for kiosk-pw';
let broker: FleetBroker;
let vdir: string;
let admin: VerifierInstance;
const verifiers: CliProcess[] = [];
const kiosks: TestKiosk[] = [];
const clients: MqttClient[] = [];
let kioskA: TestKiosk;
/** The compromised kiosk's own (registered) key. */
const rogueKey = SoftwareKeyStore.ephemeral();

/** An MQTT 5 client on the fleet broker under a device's or verifier's certificate. */
async function as(kind: 'devices' | 'verifiers', id: string, extra: Record<string, unknown> = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...broker.tls(kind, id), ...extra });
  clients.push(c);
  return c;
}

/** Granted QoS per topic filter (0x87 = not authorised). */
async function granted(c: MqttClient, filters: string[]): Promise<number[]> {
  const r = await c.subscribeAsync(filters, { qos: 1 }).catch((e: { packet?: { granted: number[] } }) => e.packet?.granted.map((qos) => ({ qos })) ?? []);
  return r.map((g) => g.qos);
}

async function checkIn(k: TestKiosk, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await k.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL })).attId);
  k.relay.nudge();
  return ids;
}

const logged = () => logRecords<{ ueid: string; att_id: string; decision: string }>(admin);

beforeAll(async () => {
  broker = await FleetBroker.start({ devices: ['kiosk-a', 'kiosk-b', 'rogue', { id: 'kiosk-pw', password: PASSWORD }], verifiers: ['verifier-1', 'verifier-2'] });
  vdir = await tempDir('bk-fleet-ver-');
  admin = await openVerifier(vdir, { allowedModels: [MODEL.sha256] });
  await admin.store.registerDevice({ ueid: 'rogue', kid: rogueKey.kid, publicJwk: rogueKey.publicJwk as never, site: 's' });
  await admin.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
  for (const id of ['verifier-1', 'verifier-2']) {
    const f = broker.files('verifiers', id);
    const p = spawnBiokiosk(['verifier', 'run', '--dir', vdir, '--broker', broker.url, '--ca', f.ca!, '--cert', f.cert!, '--key', f.key!, '--allow-model', MODEL.sha256, '--workers', '1']);
    verifiers.push(p);
  }
  await waitFor(() => verifiers.every((p) => p.err().includes('running on')), 60_000, `the verifiers to start: ${verifiers.map((p) => p.err()).join(' | ')}`);
  kioskA = await startKiosk(broker.url, admin, 'kiosk-a', { mqtt: broker.tls('devices', 'kiosk-a') });
  kiosks.push(kioskA);
  await waitFor(() => kioskA.relay.connected, 10_000, 'kiosk-a connected');
}, 120_000);

afterAll(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => {});
  for (const k of kiosks) await k.stop().catch(() => {});
  for (const p of verifiers) await p.stop();
  await admin?.close();
  await broker?.stop();
});

describe('the fleet broker lets each party do only its job', () => {
  it('refuses plain-text, certificate-less and foreign-CA connections to the fleet listener', async () => {
    const fail = (url: string, o: Record<string, unknown>) => mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3000, ...o }).then((c) => (c.end(true), 'connected'), (e: Error) => e.message);
    expect(await fail(broker.plainUrl, {})).not.toBe('connected');
    expect(await fail(broker.url, { ca: broker.tls('devices', 'kiosk-a').ca })).toMatch(/certificate required|alert|ECONNRESET|socket/i);
    // A certificate from another CA, even with a device's name.
    const other = await FleetBroker.start({ devices: ['kiosk-a'], verifiers: [] });
    try {
      expect(await fail(broker.url, { ...other.tls('devices', 'kiosk-a'), ca: broker.tls('devices', 'kiosk-a').ca })).not.toBe('connected');
    } finally {
      await other.stop();
    }
    // And the kiosk side refuses a broker whose certificate the fleet CA did not sign.
    expect(await fail(broker.url, { ...broker.tls('devices', 'kiosk-a'), ca: other.tls('devices', 'kiosk-a').ca })).toMatch(/self.signed|unable to (get|verify)|certificate/i);
  });

  it("binds the client id to the certificate: a rogue kiosk connecting under kiosk-a's client id takes nothing over", async () => {
    const rogue = await as('devices', 'rogue', { clientId: 'kiosk-a' });
    await new Promise((r) => setTimeout(r, 500));
    expect(kioskA.relay.connected).toBe(true);
    expect(rogue.connected).toBe(true);
    const before = kioskA.verdicts.length;
    await checkIn(kioskA, 1);
    await waitFor(() => kioskA.verdicts.length === before + 1, 15_000, 'a verdict for kiosk-a');
    expect(kioskA.verdicts.at(-1)?.decision).toBe('match');
  });

  it("a kiosk cannot read another kiosk's verdicts or attestations, nor join the verifiers' group; no check-in is swallowed", async () => {
    const rogue = await as('devices', 'rogue');
    const seen: string[] = [];
    rogue.on('message', (t) => seen.push(t));
    const t = deviceTopics('kiosk-a');
    const refused = [t.verdicts, t.attestations, t.challengeResponse, 'biokiosk/v1/+/verdicts', 'biokiosk/v1/+/attestations', '#', '$share/verifiers/biokiosk/v1/+/attestations', '$share/evil/biokiosk/v1/+/attestations'];
    expect(await granted(rogue, refused)).toEqual(refused.map(() => 0x87));
    expect(await granted(rogue, [deviceTopics('rogue').verdicts])).toEqual([1]);
    const before = kioskA.verdicts.length;
    const ids = await checkIn(kioskA, 10);
    await waitFor(() => kioskA.verdicts.length === before + 10, 30_000, 'ten verdicts for kiosk-a');
    expect(kioskA.verdicts.slice(before).map((v) => v.attId).sort()).toEqual([...ids].sort());
    expect(seen).toEqual([]);
  }, 60_000);

  it('a kiosk cannot publish as another device, and the verifiers never see the attempt', async () => {
    const rogue = await as('devices', 'rogue');
    const ks = SoftwareKeyStore.ephemeral();
    const forged = await signedMessage(admin.keys.fleet.publicJwk, ks, { ueid: 'kiosk-a', seq: 99_999 });
    const t = deviceTopics('kiosk-a');
    for (const topic of [t.attestations, t.challengeRequest, t.status, t.verdicts]) {
      await expect(rogue.publishAsync(topic, forged.msg.payload, { qos: 1 })).rejects.toThrow(/Not authorized/);
    }
    await new Promise((r) => setTimeout(r, 500));
    expect((await logged()).some((r) => r.att_id === forged.claims.att_id)).toBe(false);
    const stats = JSON.parse((await biokiosk('verifier', 'stats', '--dir', vdir, '--json')).stdout) as { counts: Record<string, number> };
    expect(stats.counts['unknown_device'] ?? 0).toBe(0);
  });

  it('a nonce answer goes to the requesting device only, whatever response topic it names', async () => {
    const rogue = await as('devices', 'rogue');
    const own: string[] = [];
    rogue.on('message', (topic) => own.push(topic));
    await rogue.subscribeAsync(deviceTopics('rogue').challengeResponse, { qos: 1 });
    // kiosk-b listens on its own challenge-response topic, which the rogue names as the place to answer: the
    // broker would let a verifier publish there, so only the verifier's own rule keeps it empty.
    const victim = await as('devices', 'kiosk-b');
    const redirected: string[] = [];
    victim.on('message', (topic) => redirected.push(topic));
    await victim.subscribeAsync(deviceTopics('kiosk-b').challengeResponse, { qos: 1 });
    const req = (ueid: string) => {
      const reqId = `req-${Math.random().toString(36).slice(2)}-0123456789`;
      return encodeEnvelope({ v: 1, kind: 'challenge_request', corr: reqId, body: { req_id: reqId, ueid } });
    };
    await rogue.publishAsync(deviceTopics('rogue').challengeRequest, req('rogue'), { qos: 1, properties: { responseTopic: deviceTopics('kiosk-b').challengeResponse, correlationData: Buffer.from('x') } });
    await rogue.publishAsync(deviceTopics('rogue').challengeRequest, req('kiosk-b'), { qos: 1, properties: { responseTopic: deviceTopics('kiosk-b').challengeResponse } });
    await waitFor(() => own.length >= 1, 10_000, "the nonce on the rogue's own topic");
    await new Promise((r) => setTimeout(r, 500));
    expect(own).toEqual([deviceTopics('rogue').challengeResponse]);
    expect(redirected).toEqual([]);
  });

  it('a junk flood from a compromised kiosk on its own topic: the broker refuses it past the burst and disconnects it, honest verdicts still arrive, no log entry, the database stays small', async () => {
    const rogue = await as('devices', 'rogue');
    const topic = deviceTopics('rogue').attestations;
    // Shaped like the rogue's own attestations, under its registered kid, so they pass the verifier's cheap
    // intake test and cost it a signature check each, until the rogue's failure budget runs out.
    const other = SoftwareKeyStore.ephemeral();
    const badSignature = await signedMessage(admin.keys.fleet.publicJwk, other, { ueid: 'rogue', seq: 1 });
    const [, p, s] = badSignature.jws.split('.');
    const withRogueKid = `${encodeBase64url(JSON.stringify({ alg: 'ES256', kid: rogueKey.kid, typ: 'biokiosk-att+jws' }))}.${p}.${s}`;
    const junk = (i: number): Buffer => {
      switch (i % 5) {
        case 0:
          return Buffer.from(`junk ${i}`);
        case 1: {
          const attId = `attack-${String(i).padStart(12, '0')}`;
          return encodeEnvelope({ v: 1, kind: 'attestation', corr: attId, body: `${encodeBase64url(JSON.stringify({ alg: 'ES256', kid: rogueKey.kid, typ: 'biokiosk-att+jws', '\u0001': 1 }))}.${encodeBase64url(JSON.stringify({ att_id: attId, ueid: 'rogue' }))}.AAAA` });
        }
        case 2:
          return encodeEnvelope({ v: 1, kind: 'attestation', corr: badSignature.claims.att_id, body: withRogueKid });
        case 3:
          return badSignature.msg.payload;
        default:
          return Buffer.alloc(100 * 1024, 0x41);
      }
    };
    const sizeBefore = (await logSize(admin));
    const dbBefore = statSync(join(vdir, 'verifier.db')).size;
    const before = kioskA.verdicts.length;
    const flood = (async () => {
      for (let i = 0; i < 10_000; i++) rogue.publish(topic, junk(i), { qos: 0 });
      // Answered, or never: the broker's rate limit disconnects a client it keeps refusing.
      await new Promise<void>((resolve) => {
        rogue.publish(topic, 'last', { qos: 1 }, () => resolve());
        rogue.once('close', () => resolve());
      });
    })();
    const ids = await checkIn(kioskA, 5);
    await flood;
    // The broker passed on the rogue's burst (300) and refused the rest, then disconnected it.
    await waitFor(() => !rogue.connected, 10_000, 'the broker disconnecting the flooder');
    expect(broker.output).toMatch(/biokiosk_rate_limit: client rogue disconnected/);
    await waitFor(() => kioskA.verdicts.length >= before + 5, 60_000, 'five honest verdicts during the flood');
    expect(kioskA.verdicts.slice(before).map((v) => v.decision)).toEqual(Array(5).fill('match'));
    expect(kioskA.verdicts.slice(before).map((v) => v.attId).sort()).toEqual([...ids].sort());
    await new Promise((r) => setTimeout(r, 1000));
    expect((await logSize(admin))).toBe(sizeBefore + 5);
    expect((await logged()).filter((r) => r.ueid === 'rogue')).toEqual([]);
    const stats = JSON.parse((await biokiosk('verifier', 'stats', '--dir', vdir, '--json')).stdout) as { counts: Record<string, number>; samples: unknown[] };
    // What reached the verifier (the burst the broker let through) was refused and counted, not logged.
    const counted = Object.values(stats.counts).reduce((a, b) => a + b, 0);
    expect(counted).toBeGreaterThan(100);
    expect(counted).toBeLessThan(500);
    expect(stats.counts).toMatchObject({ oversized: expect.any(Number), malformed: expect.any(Number), bad_signature: expect.any(Number) });
    expect(stats.samples.length).toBeGreaterThan(0);
    expect(statSync(join(vdir, 'verifier.db')).size - dbBefore).toBeLessThan(1024 * 1024);
  }, 120_000);

  it('a kiosk that logs in with a password (from a 0600 file) on the TLS password listener checks in like one with a certificate', async () => {
    const dir = await tempDir('bk-fleet-pw-');
    const pwFile = join(dir, 'password');
    await writeFile(pwFile, PASSWORD + '\n', { mode: 0o644 });
    await expect(brokerConnectOptions(broker.passwordUrl, { ca: broker.caPath, username: 'kiosk-pw', passwordFile: pwFile })).rejects.toThrow(/can be read by group or others.*chmod 600/);
    await writeFile(pwFile, PASSWORD + '\n', { mode: 0o600 });
    const { chmod } = await import('node:fs/promises');
    await chmod(pwFile, 0o600);
    const k = await startKiosk(broker.passwordUrl, admin, 'kiosk-pw', { mqtt: await brokerConnectOptions(broker.passwordUrl, { ca: broker.caPath, username: 'kiosk-pw', passwordFile: pwFile }) });
    kiosks.push(k);
    await checkIn(k, 1);
    await waitFor(() => k.verdicts.length === 1, 20_000, 'a verdict for kiosk-pw');
    expect(k.verdicts[0]?.decision).toBe('match');
    await writeFile(join(dir, 'wrong'), 'not the password at all\n', { mode: 0o600 });
    const wrong = await brokerConnectOptions(broker.passwordUrl, { ca: broker.caPath, username: 'kiosk-pw', passwordFile: join(dir, 'wrong') });
    await expect(mqtt.connectAsync(broker.passwordUrl, { reconnectPeriod: 0, ...wrong })).rejects.toThrow(/Not authorized/);
    // Credentials never go over plain TCP.
    await expect(brokerConnectOptions('mqtt://127.0.0.1:1883', { ca: broker.caPath, username: 'kiosk-pw', passwordFile: pwFile })).rejects.toThrow(/without TLS/);
  }, 60_000);
});
