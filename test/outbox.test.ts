import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../models/common/prng.ts';
import Database from 'better-sqlite3';
import { backoffDelay, Outbox, OutboxFullError } from '../device/outbox.ts';
import { SqliteSeqCounter } from '../device/seq-counter.ts';
import { Relay, STOP_GRACE_MS, type VerdictInfo } from '../device/relay.ts';
import { Mosquitto } from './helpers/mosquitto.ts';
import { newAttestationId } from '../protocol/attestation.ts';
import { encodeEnvelope, ENVELOPE_VERSION } from '../protocol/envelope.ts';
import { deviceTopics } from '../protocol/topics.ts';

const tmp = () => mkdtemp(join(tmpdir(), 'bk-outbox-'));

describe('durable outbox', () => {
  it('keeps entries until acknowledged, is idempotent per attestation id, and survives reopening', async () => {
    const path = join(await tmp(), 'outbox.db');
    const a = new Outbox(path);
    expect(a.enqueue('att-1', 1, Buffer.from('one'), 1000)).toBe(true);
    expect(a.enqueue('att-2', 2, Buffer.from('two'), 1000)).toBe(true);
    expect(a.enqueue('att-1', 1, Buffer.from('one'), 1000)).toBe(false);
    expect(a.size).toEqual({ entries: 2, bytes: 6 });
    expect(a.due(1000).map((e) => e.attId)).toEqual(['att-1', 'att-2']);
    a.close();
    const b = new Outbox(path);
    expect(b.size).toEqual({ entries: 2, bytes: 6 });
    expect(b.acknowledge('att-1')).toBe(true);
    expect(b.acknowledge('att-1')).toBe(false);
    expect(b.all().map((e) => e.payload.toString())).toEqual(['two']);
    b.close();
  });

  it('backs off with jitter after each attempt, and can make everything due again', async () => {
    const box = new Outbox(join(await tmp(), 'o.db'), { backoff: { baseMs: 100, maxMs: 1000 }, random: mulberry32(7) });
    box.enqueue('a', 1, Buffer.from('x'), 0);
    const delays: number[] = [];
    let now = 0;
    for (let i = 0; i < 8; i++) {
      const next = box.attempted('a', now, 'no verdict yet');
      delays.push(next - now);
      now = next;
    }
    for (const [i, d] of delays.entries()) {
      const cap = Math.min(1000, 100 * 2 ** i);
      expect(d).toBeGreaterThanOrEqual(0.1 * cap);
      expect(d).toBeLessThanOrEqual(cap);
    }
    expect(box.get('a')!.attempts).toBe(8);
    expect(box.get('a')!.lastError).toBe('no verdict yet');
    expect(box.due(now - 1)).toHaveLength(0);
    box.retryAllNow(now - 1);
    expect(box.due(now - 1)).toHaveLength(1);
    box.close();
  });

  it('refuses new entries when full, raising the alarm, and accepts again once drained', async () => {
    const alarms: string[] = [];
    const box = new Outbox(join(await tmp(), 'o.db'), { maxEntries: 10, onAlarm: (a) => alarms.push(a.level) });
    for (let i = 0; i < 10; i++) box.enqueue(`a${i}`, i, Buffer.from('x'));
    expect(alarms).toEqual(['warning']);
    expect(() => box.enqueue('a10', 10, Buffer.from('x'))).toThrow(OutboxFullError);
    expect(alarms).toEqual(['warning', 'full']);
    box.acknowledge('a0');
    expect(box.enqueue('a10', 10, Buffer.from('x'))).toBe(true);
    box.close();
  });

  it('loses nothing that enqueue returned for when the process is killed with SIGKILL', async () => {
    const path = join(await tmp(), 'killed.db');
    // A child enqueues as fast as it can and prints each id once enqueue has returned; we SIGKILL it mid-stream.
    const script = `
      import { Outbox } from ${JSON.stringify(join(import.meta.dirname, '..', 'device', 'outbox.ts'))};
      const box = new Outbox(${JSON.stringify(path)});
      for (let i = 0; ; i++) { box.enqueue('att-' + i, i, Buffer.alloc(200, i % 256)); process.stdout.write(i + '\\n'); }
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let acknowledged = -1;
    let buf = '';
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) acknowledged = Number(l);
        if (acknowledged >= 300 && !child.killed) child.kill('SIGKILL');
      });
      child.on('exit', () => resolve());
    });
    const box = new Outbox(path);
    const ids = new Set(box.all().map((e) => e.attId));
    for (let i = 0; i <= acknowledged; i++) expect(ids.has(`att-${i}`), `att-${i}`).toBe(true);
    box.close();
  });

  it("counts seq in the outbox's database, on from an earlier build's state.db, and only upwards across reopening", async () => {
    const dir = await tmp();
    const legacy = new Database(join(dir, 'state.db'));
    legacy.exec('CREATE TABLE seq_counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL); INSERT INTO seq_counter VALUES (1, 41)');
    legacy.close();
    const a = new Outbox(join(dir, 'outbox.db'));
    const seqA = new SqliteSeqCounter(a, join(dir, 'state.db'));
    expect([await seqA.next(), await seqA.next()]).toEqual([42, 43]);
    a.enqueue('att-43', 43, Buffer.from('x'));
    a.close();
    // Taken over once: the old file no longer counts.
    const stale = new Database(join(dir, 'state.db'));
    stale.exec('UPDATE seq_counter SET value = 7');
    stale.close();
    const b = new Outbox(join(dir, 'outbox.db'));
    expect(await new SqliteSeqCounter(b, join(dir, 'state.db')).next()).toBe(44);
    b.close();
    const fresh = new Outbox(join(await tmp(), 'outbox.db'));
    expect(await new SqliteSeqCounter(fresh).next()).toBe(1);
    fresh.close();
  });

  it('backoffDelay stays within [10%, 100%] of the exponential cap', () => {
    const r = mulberry32(1);
    for (let n = 1; n < 20; n++) {
      const d = backoffDelay(n, { baseMs: 500, maxMs: 60_000 }, r);
      const cap = Math.min(60_000, 500 * 2 ** (n - 1));
      expect(d).toBeGreaterThanOrEqual(Math.floor(0.1 * cap));
      expect(d).toBeLessThanOrEqual(cap);
    }
  });
});

describe('the relay settling verdicts', () => {
  it('settles an attempt once when two copies of its verdict are checked at the same time (the attestation went out twice)', async () => {
    const box = new Outbox(join(await tmp(), 'o.db'));
    const attId = newAttestationId();
    box.enqueue(attId, 1, new Uint8Array([1, 2, 3]));
    let kept = 0;
    // The verdict check itself (signature, receipt) is verdicts.ts's, tested apart: here it only takes time, as it does.
    const relay = new Relay({
      brokerUrl: 'mqtt://127.0.0.1:9',
      clientId: 'kiosk-1',
      topics: deviceTopics('kiosk-1'),
      outbox: box,
      ueid: 'kiosk-1',
      version: 'test',
      checkVerdict: async (_env, entry) => {
        await new Promise((r) => setTimeout(r, 10));
        return { attId: entry.attId, attHash: 'h', decision: 'match', claims: {} as VerdictInfo['claims'], keep: () => void kept++ };
      },
    });
    const settled: VerdictInfo[] = [];
    relay.on('verdict', (v) => settled.push(v));
    const payload = encodeEnvelope({ v: ENVELOPE_VERSION, kind: 'verdict', corr: attId, body: 'e30.e30.c2ln' });
    const onVerdict = (relay as unknown as { onVerdict(p: Buffer): Promise<void> }).onVerdict.bind(relay);
    await Promise.all([onVerdict(payload), onVerdict(payload)]);
    expect(settled.map((v) => v.attId)).toEqual([attId]);
    expect(kept).toBe(1);
    expect(relay.stats).toMatchObject({ verdicts: 1, unknownVerdicts: 1 });
    expect(box.get(attId)).toBeUndefined();
    box.close();
  });
});

describe('the relay closing', () => {
  it('closes within its grace when the broker hangs, keeping the attestation it had sent', async () => {
    const broker = await Mosquitto.start();
    const box = new Outbox(join(await tmp(), 'o.db'));
    const relay = new Relay({
      brokerUrl: broker.url,
      clientId: 'kiosk-hung',
      topics: deviceTopics('kiosk-hung'),
      outbox: box,
      ueid: 'kiosk-hung',
      version: 'test',
      checkVerdict: async () => {
        throw new Error('no verdict is expected');
      },
    });
    try {
      const connected = new Promise<void>((resolve) => relay.once('connected', () => resolve()));
      relay.start();
      await connected;
      const attId = newAttestationId();
      box.enqueue(attId, 1, new Uint8Array([1, 2, 3]));
      // Frozen, the broker takes the offline status and the DISCONNECT into its socket buffers and never answers.
      broker.freeze(true);
      const closed = await Promise.race([relay.stop().then(() => 'closed'), new Promise((r) => setTimeout(() => r('still waiting'), 4 * STOP_GRACE_MS))]);
      expect(closed).toBe('closed');
      expect(relay.connected).toBe(false);
      expect(box.get(attId)?.attId).toBe(attId);
    } finally {
      broker.freeze(false);
      box.close();
      await broker.stop();
    }
  }, 30_000);
});
