import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetBroker } from './helpers/fleet-broker.ts';
import { Mosquitto } from './helpers/mosquitto.ts';
import { Swtpm } from './helpers/swtpm.ts';
import { biokioskWith } from './helpers/cli.ts';


const biokiosk = (...args: string[]) => biokioskWith({ timeout: 90_000 }, ...args);

let broker: Mosquitto;
beforeAll(async () => {
  broker = await Mosquitto.start();
});
afterAll(async () => {
  await broker?.stop();
});

describe('biokiosk demo', () => {
  it('on the embedded broker: the genuine attempt matches, the impostor does not, with latencies per stage', async () => {
    const r = await biokiosk('demo', '--json', '--keep');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.mqttVersion).toBe(4);
    expect(out.camera).toMatch(/virtual camera/);
    const [genuine, impostor] = out.attempts;
    expect(genuine).toMatchObject({ name: 'genuine', decision: 'match' });
    expect(impostor).toMatchObject({ name: 'impostor', decision: 'no_match' });
    for (const a of out.attempts) for (const k of ['capture', 'extract', 'sign', 'relay', 'verify', 'total']) expect(a.latencyMs[k]).toBeGreaterThan(0);
    expect(out.auditLogEntries).toBe(2);
    expect(out.keyStore).toMatch(/software key file/);
    expect(out.keyStoreWarning).toMatch(/SOFTWARE key store/);

    // The audit command checks the demo's log, and finds an entry changed behind its back.
    const dir = join(out.folder, 'verifier');
    const ok = await biokiosk('verifier', 'audit', '--dir', dir);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/audit log OK: 2 entries/);
    const db = new Database(join(dir, 'verifier.db'));
    db.exec('DROP TRIGGER audit_leaves_no_update');
    db.prepare("UPDATE audit_leaves SET record = replace(record, 'no_match', 'match') WHERE idx = 1").run();
    db.close();
    const bad = await biokiosk('verifier', 'audit', '--dir', dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/entry 1 was tampered with/);
  });

  it('on mosquitto with MQTT 5, signing with a key in a TPM (swtpm)', async () => {
    const tpm = await Swtpm.start();
    try {
      const r = await biokiosk('demo', '--json', '--broker', broker.url, '--tpm', tpm.url);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.mqttVersion).toBe(5);
      expect(out.attempts.map((a: { decision: string }) => a.decision)).toEqual(['match', 'no_match']);
      expect(out.keyStore).toMatch(/^TPM swtpm:host=127\.0\.0\.1.*persistent handle 0x81010002, seq from NV counter/);
      expect(out.keyStoreWarning).toBeNull();
    } finally {
      await tpm.stop();
    }
  });

  it('on the fleet broker (mutual TLS, access rules), each of its two parties under its own certificate from --pki', async () => {
    const fleet = await FleetBroker.start({ devices: ['demo-kiosk-1'], verifiers: ['verifier-1'] });
    try {
      const r = await biokiosk('demo', '--json', '--broker', fleet.url, '--pki', join(fleet.dir, 'pki'));
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).attempts.map((a: { decision: string }) => a.decision)).toEqual(['match', 'no_match']);
      // Without credentials the fleet broker is out of reach, and the demo says so.
      const refused = await biokiosk('demo', '--json', '--broker', fleet.url);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/--pki DIR/);
    } finally {
      await fleet.stop();
    }
  });

  it('--modality fingerprint: the sessions run on the virtual serial module with synthetic fingers', async () => {
    const r = await biokiosk('demo', '--json', '--modality', 'fingerprint');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.modality).toBe('fingerprint');
    expect(out.camera).toMatch(/virtual fingerprint module/);
    expect(out.attempts.map((a: { decision: string }) => a.decision)).toEqual(['match', 'no_match']);
    expect(out.treeHeadsKept).toBeGreaterThan(0);
    for (const a of out.attempts) for (const k of ['capture', 'extract', 'sign', 'relay', 'total']) expect(a.latencyMs[k]).toBeGreaterThan(0);
  });
});
