import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteVerifierStore } from '../verifier/sqlite-store.ts';

const open = async () => new SqliteVerifierStore(join(await mkdtemp(join(tmpdir(), 'bk-vs-')), 'verifier.db'));

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
    s.issueNonce('k', 'n1', 5000);
    s.issueNonce('k', 'n2', 5000);
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
});
