/** C2SP signed notes, checkpoints and cosignatures: the spec's own example, round trips, and refusals. */
import { describe, expect, it } from 'vitest';
import { addSignatures, checkpointText, NoteSigner, openCheckpoint, parseNote, parseVkey, SIG_COSIGNATURE_V1, signCheckpoint, verifiedSigners } from '../protocol/note.ts';

describe('signed notes (c2sp.org/signed-note)', () => {
  it("verifies the specification's example note with its verifier key", () => {
    const vkey = parseVkey('example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k');
    const note = 'This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n';
    expect(verifiedSigners(parseNote(note), [vkey]).names).toEqual(new Set(['example.com/foo']));
    const altered = note.replace('example message', 'exemplary message');
    expect(verifiedSigners(parseNote(altered), [vkey]).bad).toEqual(['example.com/foo']);
    expect(() => parseVkey('example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k')).toThrow(/key ID/);
  });

  it('signs checkpoints a log key verifies, adds cosignatures a witness key verifies, and ignores unknown keys', () => {
    const log = NoteSigner.generate('biokiosk.example/log').signer;
    const witness = NoteSigner.generate('witness.example/w1', SIG_COSIGNATURE_V1).signer;
    const stranger = NoteSigner.generate('biokiosk.example/log').signer;
    const cp = { origin: 'biokiosk.example/log', treeSize: 20852163, rootHash: Buffer.alloc(32, 7) };
    const note = signCheckpoint(cp, log);
    expect(note.startsWith(checkpointText(cp))).toBe(true);
    const cosigned = addSignatures(note, witness.cosign(checkpointText(cp), 1_679_315_147));
    const opened = openCheckpoint(cosigned, [parseVkey(log.vkey)], [parseVkey(witness.vkey)]);
    expect(opened.checkpoint).toEqual(cp);
    expect(opened.witnessedBy.get('witness.example/w1')).toBe(1_679_315_147);
    // Same name, another key: not the log's signature.
    expect(() => openCheckpoint(note, [parseVkey(stranger.vkey)])).toThrow(/not signed by a log key this party trusts/);
    // A cosignature over another checkpoint does not verify against this one.
    const other = witness.cosign(checkpointText({ ...cp, treeSize: 1 }), 1);
    expect(() => openCheckpoint(addSignatures(note, other), [parseVkey(log.vkey)], [parseVkey(witness.vkey)])).toThrow(/cosignature of witness.example\/w1 does not verify/);
  });

  it('refuses malformed notes and checkpoints', () => {
    expect(() => parseNote('no blank line\n\u2014 a AAAAAAA=\n')).toThrow();
    expect(() => parseNote('text\n\nnot a signature\n')).toThrow(/signature line/);
    expect(() => parseNote('te\u0007xt\n\n\u2014 a AAAAAAAA\n')).toThrow(/control characters/);
    const log = NoteSigner.generate('o').signer;
    expect(() => openCheckpoint(`o\n01\n${Buffer.alloc(32).toString('base64')}\n\n${log.signText('x')}`, [log.verifier])).toThrow(/leading zeroes/);
  });
});
