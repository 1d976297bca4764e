/**
 * A compromised kiosk flooding its own topic is cut off at the broker: the fleet broker (mutual TLS, the
 * dynamic-security access rules), a real `biokiosk verifier run` with an admin login of its own, an honest kiosk
 * beside the rogue. The rogue is quarantined after its failure budget, cannot publish while quarantined (on its
 * certificate or after reconnecting), is released when the quarantine ends, and the honest kiosk is answered
 * throughout.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { deviceTopics } from '../protocol/topics.ts';
import { DEFAULT_QUARANTINE, nextQuarantine } from '../verifier/quarantine.ts';
import { openVerifier, type VerifierInstance } from '../verifier/setup.ts';
import { signedMessage } from './helpers/attest.ts';
import { biokiosk, spawnBiokiosk, type CliProcess } from './helpers/cli.ts';
import { faceTemplate, MODEL, startKiosk, tempDir, waitFor, type TestKiosk } from './helpers/e2e.ts';
import { FleetBroker } from './helpers/fleet-broker.ts';

describe('nextQuarantine', () => {
  const policy = { firstMs: 60_000, maxMs: 8 * 60_000, forgetMs: 3_600_000 };
  it('doubles with each strike in a row, up to the cap, and forgets strikes after a quiet spell', () => {
    const first = nextQuarantine(undefined, 'k', 'flood', 1000, policy);
    expect(first).toEqual({ ueid: 'k', strikes: 1, since: 1000, until: 61_000, reason: 'flood', releasedAt: null });
    let row = { ...first, releasedAt: first.until };
    const lengths = [60_000];
    for (let i = 0; i < 5; i++) {
      const next = nextQuarantine(row, 'k', 'flood', row.releasedAt + 10, policy);
      lengths.push(next.until - next.since);
      row = { ...next, releasedAt: next.until };
    }
    expect(lengths).toEqual([60_000, 120_000, 240_000, 480_000, 480_000, 480_000]);
    expect(nextQuarantine(row, 'k', 'flood', row.releasedAt + 3_600_000, policy).strikes).toBe(1);
    // An operator's early release counts from the release.
    expect(nextQuarantine({ ...first, releasedAt: 2000 }, 'k', 'flood', 2000 + 3_599_999, policy).strikes).toBe(2);
  });
});

describe('a flooding kiosk is quarantined at the broker', () => {
  const ADMIN_PASSWORD = 'a long random password for node-1 admin';
  let broker: FleetBroker;
  let vdir: string;
  let inst: VerifierInstance;
  let verifier: CliProcess;
  let honest: TestKiosk;
  const clients: MqttClient[] = [];
  const rogueKey = SoftwareKeyStore.ephemeral();
  const offlineKey = SoftwareKeyStore.ephemeral();

  const rogue = async (): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...broker.tls('devices', 'rogue') });
    clients.push(c);
    return c;
  };
  const quarantined = async (): Promise<Array<{ ueid: string; strikes: number }>> => (JSON.parse((await biokiosk('verifier', 'quarantine', '--dir', vdir, '--json')).stdout) as { quarantined: Array<{ ueid: string; strikes: number }> }).quarantined;
  const checkIn = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await honest.attester.attest({ subject: 'alice', modality: 'face', template: faceTemplate(1, 0.03), templateFormat: 'biokiosk-face/1', quality: 80, model: MODEL });
    honest.relay.nudge();
  };

  beforeAll(async () => {
    broker = await FleetBroker.start({ devices: ['honest', 'rogue', 'offline'], verifiers: ['verifier-1'], admins: [{ id: 'node-1', password: ADMIN_PASSWORD }] });
    vdir = await tempDir('bk-quarantine-');
    inst = await openVerifier(vdir, { allowedModels: [MODEL.sha256] });
    await inst.store.registerDevice({ ueid: 'rogue', kid: rogueKey.kid, publicJwk: rogueKey.publicJwk as never, site: 's' });
    await inst.store.registerDevice({ ueid: 'offline', kid: offlineKey.kid, publicJwk: offlineKey.publicJwk as never, site: 's' });
    await inst.store.enroll({ subject: 'alice', modality: 'face', template: faceTemplate(1), templateFormat: 'biokiosk-face/1', modelSha256: MODEL.sha256 });
    const passwordFile = join(vdir, 'broker-admin.password');
    await writeFile(passwordFile, ADMIN_PASSWORD, { mode: 0o600 });
    const f = broker.files('verifiers', 'verifier-1');
    // A first quarantine of 6 s, so that the release is seen here.
    verifier = spawnBiokiosk(['verifier', 'run', '--dir', vdir, '--broker', broker.url, '--ca', f.ca!, '--cert', f.cert!, '--key', f.key!, '--allow-model', MODEL.sha256, '--workers', '1',
      '--broker-admin', 'node-1', '--broker-admin-url', broker.passwordUrl, '--broker-admin-password-file', passwordFile, '--quarantine-minutes', '0.1']);
    await waitFor(() => verifier.err().includes('running on'), 60_000, `the verifier to start: ${verifier.err()}`);
    expect(verifier.err()).toContain('quarantine through admin:node-1');
    honest = await startKiosk(broker.url, inst, 'honest', { mqtt: broker.tls('devices', 'honest') });
    await waitFor(() => honest.relay.connected, 10_000, 'the honest kiosk connected');
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    await honest?.stop().catch(() => {});
    await verifier?.stop();
    await inst?.close();
    await broker?.stop();
  });

  it('an honest kiosk back after two days offline, its 300 signed attestations all refused as stale, is not quarantined', async () => {
    const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...broker.tls('devices', 'offline') });
    clients.push(c);
    const iat = Math.floor(Date.now() / 1000) - 2 * 86_400;
    const rejected: string[] = [];
    c.on('message', () => rejected.push('verdict'));
    await c.subscribeAsync(deviceTopics('offline').verdicts, { qos: 1 });
    const msgs = [];
    for (let seq = 1; seq <= 300; seq++) msgs.push((await signedMessage(inst.keys.fleet.publicJwk, offlineKey, { ueid: 'offline', seq, overrides: { iat } })).msg);
    await Promise.all(msgs.map((m) => c.publishAsync(m.topic, m.payload, { qos: 1 })));
    await waitFor(() => rejected.length >= 300, 60_000, `300 verdicts for the stale attestations (${rejected.length})`);
    await new Promise((r) => setTimeout(r, 500));
    expect(await quarantined()).toEqual([]);
    expect(verifier.err()).not.toContain('kiosk offline quarantined');
    await expect(c.publishAsync(deviceTopics('offline').status, 'still allowed', { qos: 1 })).resolves.toBeDefined();
  }, 90_000);

  it('cuts the rogue off after its failure budget while the honest kiosk is answered; an operator releases it; a second flood doubles the quarantine, which ends on its own', async () => {
    const topic = deviceTopics('rogue').attestations;
    const admin = ['--broker-admin', 'node-1', '--broker-admin-url', broker.passwordUrl, '--broker-admin-password-file', join(vdir, 'broker-admin.password'), '--ca', broker.caPath];
    /** 10,000 junk messages a second, in steps, until the broker drops the rogue's connection; how many were sent. */
    const flood = async (): Promise<number> => {
      const flooder = await rogue();
      let sent = 0;
      while (flooder.connected && sent < 50_000) {
        for (let i = 0; i < 100; i++) flooder.publish(topic, `junk ${sent++}`, { qos: 0 });
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(flooder.connected).toBe(false);
      return sent;
    };
    const before = honest.verdicts.length;
    await checkIn(2);
    // The quarantine's budget is 50 unsigned messages: cut off long before the flood could go on (allowing for what was in flight).
    expect(await flood()).toBeLessThan(20_000);
    await waitFor(() => verifier.err().includes('ALERT: kiosk rogue quarantined'), 10_000, `the quarantine alert: ${verifier.err()}`);
    expect((await quarantined()).map((q) => [q.ueid, q.strikes])).toEqual([['rogue', 1]]);

    // Reconnecting on its certificate gets it nothing: every publish is refused while the quarantine lasts.
    const again = await rogue();
    await expect(again.publishAsync(topic, 'still here', { qos: 1 })).rejects.toThrow(/not authori[sz]ed/i);
    await checkIn(2);
    await waitFor(() => honest.verdicts.length >= before + 4, 30_000, 'four honest verdicts');
    expect(honest.verdicts.slice(before).map((v) => v.decision)).toEqual(Array(4).fill('match'));

    // The operator ends it early.
    const r = await biokiosk('verifier', 'quarantine', '--dir', vdir, '--release', 'rogue', ...admin);
    expect([r.code, r.stdout]).toEqual([0, 'released rogue\n']);
    expect(await quarantined()).toEqual([]);
    await expect((await rogue()).publishAsync(topic, 'back', { qos: 1 })).resolves.toBeDefined();
    const twice = await biokiosk('verifier', 'quarantine', '--dir', vdir, '--release', 'rogue', ...admin);
    expect([twice.code, twice.stderr]).toEqual([2, expect.stringContaining('rogue is not quarantined')]);

    // Again at once: the second strike, twice as long (12 s); the node's sweep gives the login back when it ends.
    expect(await flood()).toBeLessThan(20_000);
    await waitFor(async () => (await quarantined()).length === 1, 10_000, 'the second quarantine');
    const [second] = (JSON.parse((await biokiosk('verifier', 'quarantine', '--dir', vdir, '--json')).stdout) as { quarantined: Array<{ strikes: number; since: string; until: string }> }).quarantined;
    expect(second!.strikes).toBe(2);
    expect(Date.parse(second!.until) - Date.parse(second!.since)).toBe(12_000);
    await waitFor(async () => (await quarantined()).length === 0, 30_000, 'the release');
    expect(verifier.err()).toContain('kiosk rogue released from quarantine');
    await expect((await rogue()).publishAsync(topic, 'back again', { qos: 1 })).resolves.toBeDefined();
  }, 90_000);
});

it('the default quarantine budget runs out before the intake stops reading a device', async () => {
  const { DEFAULT_INTAKE } = await import('../verifier/node.ts');
  expect(DEFAULT_QUARANTINE.failures.burst).toBeLessThan(DEFAULT_INTAKE.failureBudget.burst);
});
