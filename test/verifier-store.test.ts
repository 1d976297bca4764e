import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { REJECTION_SAMPLES_KEPT } from '../verifier/store.ts';
import { SqliteVerifierStore } from '../verifier/sqlite-store.ts';

const key = randomBytes(32);
const open = async (path?: string) => new SqliteVerifierStore(path ?? join(await mkdtemp(join(tmpdir(), 'bk-vs-')), 'verifier.db'), { galleryKey: key });

describe('verifier store (SQLite)', () => {
  it('registers, finds and revokes devices', async () => {
    const s = await open();
    s.registerDevice({ ueid: 'kiosk-1', kid: 'kid-1', publicJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }, site: 'pharmacy-7' }, 1000);
    expect(s.deviceByKid('kid-1')).toMatchObject({ ueid: 'kiosk-1', status: 'active', site: 'pharmacy-7' });
    expect(s.revokeDevice('kiosk-1', 2000)).toBe(true);
    expect(s.revokeDevice('kiosk-1', 3000)).toBe(false);
    expect(s.device('kiosk-1')).toMatchObject({ status: 'revoked', revokedAt: 2000 });
    expect(s.deviceByKid('nope')).toBeUndefined();
    s.close();
  });

  it('accepts each seq once, in any order within the window, and refuses old ones', async () => {
    const s = await open();
    expect(s.acceptSeq('k', 5, 4)).toBe('ok');
    expect(s.acceptSeq('k', 3, 4)).toBe('ok'); // reordered, within the window
    expect(s.acceptSeq('k', 3, 4)).toBe('replayed');
    expect(s.acceptSeq('k', 5, 4)).toBe('replayed');
    expect(s.acceptSeq('k', 1, 4)).toBe('too_old');
    expect(s.acceptSeq('k', 9, 4)).toBe('ok');
    expect(s.acceptSeq('k', 5, 4)).toBe('too_old');
    expect(s.lastSeq('k')).toBe(9);
    for (let i = 10; i < 300; i++) expect(s.acceptSeq('k', i, 64)).toBe('ok');
    for (let i = 10; i < 300; i++) expect(s.acceptSeq('k', i, 64)).not.toBe('ok');
    s.close();
  });

  it('issues nonces that can be used once, before they expire', async () => {
    const s = await open();
    s.issueNonce('k', 'n1', 5000, { now: 1000 });
    s.issueNonce('k', 'n2', 5000, { now: 1000 });
    expect(s.consumeNonce('k', 'n1', 4000)).toBe('ok');
    expect(s.consumeNonce('k', 'n1', 4000)).toBe('reused');
    expect(s.consumeNonce('k', 'n2', 6000)).toBe('expired');
    expect(s.consumeNonce('k', 'n3', 4000)).toBe('unknown');
    expect(s.consumeNonce('other', 'n2', 4000)).toBe('unknown');
    s.close();
  });

  it('keeps gallery entries and verdicts', async () => {
    const s = await open();
    s.enroll({ subject: 'alice', modality: 'face', template: Uint8Array.from([1, 2, 3]), templateFormat: 'biokiosk-face/1', modelSha256: 'ab'.repeat(32) });
    expect(Array.from(s.galleryEntry('alice', 'face')!.template)).toEqual([1, 2, 3]);
    expect(s.galleryEntry('alice', 'fingerprint')).toBeUndefined();
    s.saveVerdict({ attHash: 'h', attId: 'a', verdict: 'jws', createdAt: 1 });
    s.saveVerdict({ attHash: 'h', attId: 'a', verdict: 'other', createdAt: 2 });
    expect(s.verdictFor('h')?.verdict).toBe('jws');
    s.close();
  });

  it('prunes expired nonces and keeps at most 16 outstanding per device', async () => {
    const s = await open();
    for (let i = 0; i < 40; i++) s.issueNonce('k', `n${i}`, 10_000 + i, { now: 1000 });
    expect(s.nonceCount()).toBe(16);
    expect(s.consumeNonce('k', 'n39', 2000)).toBe('ok');
    expect(s.consumeNonce('k', 'n0', 2000)).toBe('unknown');
    // Long after they expired, issuing one more prunes them all.
    s.issueNonce('other', 'x', 10_000_000, { now: 5_000_000 });
    expect(s.nonceCount()).toBe(1);
    s.close();
  });

  it('encrypts gallery templates at rest, bound to their row', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'bk-vs-')), 'verifier.db');
    const s = await open(path);
    const template = Uint8Array.from({ length: 600 }, (_, i) => i % 251);
    s.enroll({ subject: 'alice', modality: 'face', template, templateFormat: 'biokiosk-face/1', modelSha256: 'ab'.repeat(32) });
    s.enroll({ subject: 'bob', modality: 'face', template: Uint8Array.from([9, 9, 9]), templateFormat: 'biokiosk-face/1', modelSha256: 'ab'.repeat(32) });
    s.close();
    const raw = new Database(path);
    const blob = (raw.prepare("SELECT template FROM gallery WHERE subject = 'alice'").get() as { template: Buffer }).template;
    expect(blob.includes(Buffer.from(template.subarray(0, 32)))).toBe(false);
    // Someone with the file moves alice's template to bob's row: it no longer opens.
    raw.prepare("UPDATE gallery SET template = ? WHERE subject = 'bob'").run(blob);
    raw.close();
    const again = await open(path);
    expect(Array.from(again.galleryEntry('alice', 'face')!.template)).toEqual(Array.from(template));
    expect(() => again.galleryEntry('bob', 'face')).toThrow(/GalleryTampered|cannot be used/);
    again.close();
    // Another verifier's key cannot read it either.
    const other = new SqliteVerifierStore(path, { galleryKey: randomBytes(32) });
    expect(() => other.galleryEntry('alice', 'face')).toThrow(/does not decrypt/);
    other.close();
  });

  it('encrypts the plaintext templates of an older database when it is opened', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'bk-vs-')), 'verifier.db');
    (await open(path)).close();
    const raw = new Database(path);
    raw.prepare("INSERT INTO gallery VALUES ('carol', 'face', ?, 'biokiosk-face/1', ?, 1)").run(Buffer.from([1, 2, 3, 4]), 'ab'.repeat(32));
    raw.close();
    const s = await open(path);
    expect(Array.from(s.galleryEntry('carol', 'face')!.template)).toEqual([1, 2, 3, 4]);
    s.close();
    const check = new Database(path, { readonly: true });
    expect((check.prepare("SELECT template FROM gallery WHERE subject = 'carol'").get() as { template: Buffer }).template.subarray(0, 4).toString()).toBe('BKG1');
    check.close();
  });

  it('keeps a bounded, expiring sample of unauthenticated rejections and hourly counts', async () => {
    const s = await open();
    const now = Date.now();
    for (let i = 0; i < 3; i++) {
      const samples = Array.from({ length: 600 }, (_, j) => ({ at: now, ueid: 'k', code: 'bad_signature', detail: `junk ${i}/${j}`, bytes: 100, hash: 'h' }));
      s.noteRejections(new Map([['bad_signature', 600], ['malformed', 5]]), samples, now);
    }
    const r = s.rejectionReport(now, { samples: 5000 });
    expect(r.counts).toEqual({ bad_signature: 1800, malformed: 15 });
    expect(r.samples.length).toBe(REJECTION_SAMPLES_KEPT);
    expect(r.samples[0]!.detail).toBe('junk 2/599');
    // A week later the samples are gone with the next write; the counts of that hour too, after 30 days.
    s.noteRejections(new Map([['malformed', 1]]), [{ at: now + 8 * 86_400_000, ueid: 'k', code: 'malformed', detail: 'x', bytes: 1, hash: 'h' }], now + 8 * 86_400_000);
    expect(s.rejectionReport(now + 8 * 86_400_000, { samples: 5000 }).samples.length).toBe(1);
    s.close();
  });
});
