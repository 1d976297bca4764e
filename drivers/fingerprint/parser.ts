/**
 * Stream framing: turns a byte stream (arbitrary chunks) into packets. After garbage it resynchronises by scanning
 * for the header EF 01; a candidate with an unknown pid, an impossible length or a bad checksum costs one byte (the
 * next header may begin inside it) and the scan goes on. Every byte not delivered in a packet is reported as dropped,
 * with the reason, so a caller can log line noise. `PacketParser` is the push-style core; `PacketParserStream` wraps
 * it as an object-mode Transform in the manner of serialport's parsers.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { CHECKSUM_BYTES, HEADER, MAX_PAYLOAD, PREFIX_BYTES } from './constants.ts';
import { checkPrefix, checksum, type Packet } from './codec.ts';
import { BadChecksumError, type PacketError } from './errors.ts';

export interface DropReport {
  bytes: number;
  /** `garbage` (bytes outside any header), `reset` (a partial packet thrown away), or a packet error's code. */
  reason: string;
  error?: PacketError;
}

export interface PacketParserOptions {
  maxPayload?: number;
  onPacket: (p: Packet) => void;
  onDrop?: (d: DropReport) => void;
}

const H0 = HEADER >> 8;
const H1 = HEADER & 0xff;

export class PacketParser {
  private buf: Buffer = Buffer.alloc(0);
  private readonly maxPayload: number;
  private readonly onPacket: (p: Packet) => void;
  private readonly onDrop: (d: DropReport) => void;
  /** Totals since construction. */
  droppedBytes = 0;
  packets = 0;

  constructor(o: PacketParserOptions) {
    this.maxPayload = o.maxPayload ?? MAX_PAYLOAD;
    this.onPacket = o.onPacket;
    this.onDrop = o.onDrop ?? (() => {});
  }

  /** Bytes held while waiting for the rest of a packet. */
  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Uint8Array): void {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    this.drain();
  }

  /** Throws away a partial packet (after a timeout: the rest is never coming). */
  reset(): void {
    if (this.buf.length > 0) this.drop(this.buf.length, 'reset');
  }

  private drop(n: number, reason: string, error?: PacketError): void {
    this.buf = this.buf.subarray(n);
    this.droppedBytes += n;
    this.onDrop(error ? { bytes: n, reason, error } : { bytes: n, reason });
  }

  private drain(): void {
    for (;;) {
      const start = this.findHeader();
      if (start < 0) {
        // Keep a trailing EF: it may be the first half of a header split across chunks.
        const keep = this.buf.length > 0 && this.buf[this.buf.length - 1] === H0 ? 1 : 0;
        if (this.buf.length - keep > 0) this.drop(this.buf.length - keep, 'garbage');
        return;
      }
      if (start > 0) this.drop(start, 'garbage');
      if (this.buf.length < PREFIX_BYTES) return;
      let length: number;
      let pid: number;
      try {
        ({ pid, length } = checkPrefix(this.buf, 0, this.maxPayload));
      } catch (e) {
        this.drop(1, (e as PacketError).code, e as PacketError);
        continue;
      }
      const total = PREFIX_BYTES + length;
      if (this.buf.length < total) return;
      const payload = this.buf.subarray(PREFIX_BYTES, total - CHECKSUM_BYTES);
      const actual = this.buf.readUInt16BE(total - CHECKSUM_BYTES);
      const expected = checksum(pid, length, payload);
      if (actual !== expected) {
        const err = new BadChecksumError(expected, actual);
        this.drop(1, err.code, err);
        continue;
      }
      const packet: Packet = { address: this.buf.readUInt32BE(2), pid, payload: Uint8Array.from(payload) };
      this.buf = this.buf.subarray(total);
      this.packets++;
      this.onPacket(packet);
    }
  }

  private findHeader(): number {
    const b = this.buf;
    for (let i = 0; i + 1 < b.length; i++) if (b[i] === H0 && b[i + 1] === H1) return i;
    return -1;
  }
}

/** An object-mode Transform: bytes in, `Packet` objects out; emits `drop` with a DropReport. */
export class PacketParserStream extends Transform {
  private readonly parser: PacketParser;
  constructor(o: { maxPayload?: number } = {}) {
    super({ readableObjectMode: true });
    this.parser = new PacketParser({
      maxPayload: o.maxPayload,
      onPacket: (p) => this.push(p),
      onDrop: (d) => this.emit('drop', d),
    });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.parser.push(chunk);
    cb();
  }
  override _flush(cb: TransformCallback): void {
    this.parser.reset();
    cb();
  }
}
