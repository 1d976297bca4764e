// The ZFM packet codec and stream parser, as pure functions: round trips, every malformed packet, resynchronisation.
import { describe, expect, it } from 'vitest';
import {
  BadChecksumError,
  BadLengthError,
  checksum,
  ConfirmationError,
  decodePacket,
  describeConfirmation,
  encodePacket,
  encodeSystemParameters,
  IMAGE_PACKED_BYTES,
  packImage,
  PacketParser,
  PacketParserStream,
  parseSystemParameters,
  payloads,
  quantise4,
  unpackImage,
  UnknownPidError,
  type DropReport,
  type Packet,
} from '../drivers/fingerprint/index.ts';
import { BiokioskError } from '../protocol/errors.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const DEFAULT = 0xffffffff;

describe('codec', () => {
  it('encodes the datasheet example: VfyPwd with password 0 to the default address', () => {
    const bytes = encodePacket({ address: DEFAULT, pid: 0x01, payload: payloads.vfyPwd(0) });
    expect(bytes.toString('hex')).toBe('ef01ffffffff010007130000000000' + '1b');
    // checksum = 01 + 00 07 + 13 = 0x1b
    expect(checksum(0x01, 7, payloads.vfyPwd(0))).toBe(0x1b);
    // GenImg: EF01 FFFFFFFF 01 0003 01 0005
    expect(encodePacket({ address: DEFAULT, pid: 1, payload: payloads.genImg() }).toString('hex')).toBe('ef01ffffffff0100030100' + '05');
  });

  it('round-trips random packets of every pid and size, with the checksum wrapping at 65536', () => {
    const r = rng(7);
    for (let i = 0; i < 300; i++) {
      const pid = [0x01, 0x02, 0x07, 0x08][i % 4]!;
      const n = pid === 0x07 ? 1 + Math.floor(r() * 40) : Math.floor(r() * 257);
      const payload = Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
      const address = Math.floor(r() * 2 ** 32) >>> 0;
      const p = decodePacket(encodePacket({ address, pid, payload }));
      expect(p).toEqual({ address, pid, payload });
    }
    const big = new Uint8Array(256).fill(0xff);
    expect(checksum(0x02, 258, big)).toBe((2 + 1 + 2 + 256 * 255) & 0xffff);
    expect(decodePacket(encodePacket({ address: 1, pid: 2, payload: big })).payload).toEqual(big);
  });

  it('rejects a bad checksum, bad lengths and unknown pids with typed errors', () => {
    const good = encodePacket({ address: DEFAULT, pid: 0x07, payload: Uint8Array.of(0x00) });
    const badSum = Buffer.from(good);
    badSum[badSum.length - 1]! ^= 1;
    expect(() => decodePacket(badSum)).toThrow(BadChecksumError);
    const wrongPid = Buffer.from(good);
    wrongPid[6] = 0x05;
    expect(() => decodePacket(wrongPid)).toThrow(UnknownPidError);
    expect(() => encodePacket({ address: 0, pid: 0x03, payload: new Uint8Array(1) })).toThrow(UnknownPidError);
    // Too short to be a packet, length field disagreeing with the bytes, length under 2, length over the bound.
    expect(() => decodePacket(good.subarray(0, 8))).toThrow(BadLengthError);
    expect(() => decodePacket(Buffer.concat([good, Buffer.of(0)]))).toThrow(BadLengthError);
    const len1 = Buffer.from(good);
    len1.writeUInt16BE(1, 7);
    expect(() => decodePacket(len1)).toThrow(BadLengthError);
    const ackNoCode = encodePacket({ address: 0, pid: 0x02, payload: new Uint8Array(0) });
    ackNoCode[6] = 0x07;
    expect(() => decodePacket(ackNoCode)).toThrow(BadLengthError);
    const huge = Buffer.from(good);
    huge.writeUInt16BE(300, 7);
    expect(() => decodePacket(huge)).toThrow(BadLengthError);
    expect(() => encodePacket({ address: 0, pid: 2, payload: new Uint8Array(257) })).toThrow(BadLengthError);
    const noHeader = Buffer.from(good);
    noHeader[0] = 0;
    expect(() => decodePacket(noHeader)).toThrow(BadLengthError);
    for (const E of [BadChecksumError, BadLengthError, UnknownPidError]) expect(E.prototype).toBeInstanceOf(BiokioskError);
  });

  it('names confirmation codes with the datasheet meaning', () => {
    expect(describeConfirmation(0x02).name).toBe('NoFinger');
    expect(describeConfirmation(0x0f).meaning).toMatch(/upload/);
    const e = new ConfirmationError(0x13, 'VfyPwd');
    expect(e.code).toBe('FingerprintWrongPassword');
    expect(e.kind).toBe('input');
    expect(new ConfirmationError(0x18, 'X').kind).toBe('internal');
    expect(new ConfirmationError(0x18, 'X').message).toMatch(/flash/);
    expect(describeConfirmation(0x77).name).toBe('Unknown0x77');
  });

  it('parses ReadSysPara and packs images high nibble first', () => {
    const sys = encodeSystemParameters({ status: 4, systemId: 9, librarySize: 1000, securityLevel: 3, address: 0x12345678, packetSizeCode: 1, baudMultiplier: 12 });
    const p = parseSystemParameters(Uint8Array.from([0, ...sys]));
    expect(p).toMatchObject({ librarySize: 1000, address: 0x12345678, packetSize: 64, baud: 115200 });
    const gray = Uint8Array.of(0x00, 0xff, 0x7f, 0x80);
    expect([...packImage(gray)]).toEqual([0x0f, 0x78]);
    expect([...unpackImage(packImage(gray), 2, 2).data]).toEqual([0, 255, 119, 136]);
    expect([...quantise4(gray)]).toEqual([0, 255, 119, 136]);
    expect(IMAGE_PACKED_BYTES).toBe(36_864);
  });
});

describe('stream parser', () => {
  function stream(r: () => number, count: number): { bytes: Buffer; packets: Packet[] } {
    const packets: Packet[] = [];
    for (let i = 0; i < count; i++) {
      const pid = i % 3 === 0 ? 0x07 : 0x02;
      packets.push({ address: DEFAULT, pid, payload: Uint8Array.from({ length: 1 + Math.floor(r() * 128) }, () => Math.floor(r() * 256)) });
    }
    return { bytes: Buffer.concat(packets.map((p) => encodePacket(p))), packets };
  }

  function feed(bytes: Buffer, r: () => number): { out: Packet[]; drops: DropReport[]; parser: PacketParser } {
    const out: Packet[] = [];
    const drops: DropReport[] = [];
    const parser = new PacketParser({ onPacket: (p) => out.push(p), onDrop: (d) => drops.push(d) });
    for (let off = 0; off < bytes.length; ) {
      const n = r() < 0.1 ? bytes.length : 1 + Math.floor(r() * 50);
      parser.push(bytes.subarray(off, off + n));
      off += n;
    }
    return { out, drops, parser };
  }

  it('delivers every packet whatever the chunking (split and merged chunks, one byte at a time)', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const r = rng(seed);
      const { bytes, packets } = stream(r, 20);
      const { out, drops } = feed(bytes, r);
      expect(out).toEqual(packets);
      expect(drops).toEqual([]);
    }
    const { bytes, packets } = stream(rng(99), 5);
    const out: Packet[] = [];
    const p = new PacketParser({ onPacket: (x) => out.push(x) });
    for (const b of bytes) p.push(Uint8Array.of(b));
    expect(out).toEqual(packets);
  });

  it('resynchronises after garbage, false headers, corrupted and truncated packets, and reports the dropped bytes', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const r = rng(1000 + seed);
      const { packets } = stream(r, 12);
      const pieces: Buffer[] = [];
      const expected: Packet[] = [];
      packets.forEach((p, i) => {
        const enc = encodePacket(p);
        const g = Buffer.from(Array.from({ length: (i % 4 === 1 ? 3 : 0) + Math.floor(r() * 20) }, () => Math.floor(r() * 256)));
        if (i % 4 === 1) g.set([0xef, 0x01, 0x07], 0); // a false header
        pieces.push(g);
        if (i % 5 === 2) {
          const bad = Buffer.from(enc);
          bad[bad.length - 1]! ^= 0xff; // bad checksum
          pieces.push(bad);
        } else if (i % 5 === 4) {
          pieces.push(enc.subarray(0, 7)); // truncated: cut inside its prefix
        } else {
          pieces.push(enc);
          expected.push(p);
        }
      });
      const all = Buffer.concat(pieces);
      const { out, drops, parser } = feed(all, r);
      parser.reset();
      // A false header can swallow a following good packet only if its checksum also matched (1 in 65536).
      expect(out).toEqual(expected);
      expect(drops.reduce((s, d) => s + d.bytes, 0)).toBe(all.length - expected.reduce((s, p) => s + p.payload.length + 11, 0));
      expect(parser.droppedBytes).toBe(all.length - expected.reduce((s, p) => s + p.payload.length + 11, 0));
      expect(drops.some((d) => d.reason === 'FingerprintBadChecksum')).toBe(true);
    }
  });

  it('rejects lengths beyond the bound without waiting for them', () => {
    const out: Packet[] = [];
    const drops: DropReport[] = [];
    const p = new PacketParser({ onPacket: (x) => out.push(x), onDrop: (d) => drops.push(d) });
    const good = encodePacket({ address: DEFAULT, pid: 0x07, payload: Uint8Array.of(0) });
    // A prefix claiming 0xFFFF bytes, then a good packet: the parser must not sit on 64 KB of "payload".
    p.push(Buffer.concat([Buffer.from('ef01ffffffff07ffff', 'hex'), good]));
    expect(out).toHaveLength(1);
    expect(drops[0]?.reason).toBe('FingerprintBadLength');
    const p2 = new PacketParser({ onPacket: (x) => out.push(x), onDrop: (d) => drops.push(d) });
    p2.push(Buffer.from('ef01ffffffff09000300', 'hex'));
    expect(drops.some((d) => d.reason === 'FingerprintUnknownPid')).toBe(true);
  });

  it('works as an object-mode Transform', async () => {
    const t = new PacketParserStream();
    const got: Packet[] = [];
    const drops: DropReport[] = [];
    t.on('data', (p: Packet) => got.push(p));
    t.on('drop', (d: DropReport) => drops.push(d));
    const a = encodePacket({ address: DEFAULT, pid: 0x07, payload: Uint8Array.of(0, 1, 2) });
    t.write(Buffer.concat([Buffer.from('0102', 'hex'), a.subarray(0, 5)]));
    t.write(a.subarray(5));
    t.end();
    await new Promise((r) => t.on('end', r));
    expect(got).toHaveLength(1);
    expect(drops).toEqual([{ bytes: 2, reason: 'garbage' }]);
  });
});
