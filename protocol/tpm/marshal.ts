/**
 * The one marshalling mechanism of the TPM driver: a writer and a reader for the TPM's big-endian wire types
 * (UINT8/16/32/64, TPM2B sized buffers, nested sized structures). Every structure and command in this driver is
 * built from these calls, so bounds checking lives in one place: a short or oversized read throws a
 * `TpmFormatError` naming the field, never a RangeError.
 */
import { TpmFormatError } from './errors.ts';

export class Writer {
  private buf = Buffer.alloc(256);
  private len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  get length(): number {
    return this.len;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.len);
    this.len += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }

  u64(v: bigint): this {
    this.ensure(8);
    this.buf.writeBigUInt64BE(v, this.len);
    this.len += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** TPM2B: a UINT16 size, then the bytes. */
  tpm2b(b: Uint8Array): this {
    if (b.length > 0xffff) throw new RangeError(`TPM2B of ${b.length} bytes is over 65535`);
    return this.u16(b.length).bytes(b);
  }

  /** A TPM2B wrapping a structure (e.g. TPM2B_PUBLIC): writes the structure, then backfills its UINT16 size. */
  sized(fill: (w: Writer) => void): this {
    const inner = new Writer();
    fill(inner);
    return this.tpm2b(inner.finish());
  }

  /** Overwrites a UINT32 already written (the command header's size). */
  patchU32(offset: number, v: number): this {
    this.buf.writeUInt32BE(v >>> 0, offset);
    return this;
  }

  finish(): Uint8Array {
    return new Uint8Array(this.buf.subarray(0, this.len));
  }
}

export class Reader {
  private pos = 0;

  /** `what` names the structure being read, for error messages ("TPM2_Sign response"). */
  constructor(
    private readonly buf: Uint8Array,
    readonly what: string,
  ) {}

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private take(n: number, field: string): Uint8Array {
    if (n > this.remaining) {
      throw new TpmFormatError(`${this.what}: truncated at ${field} (needs ${n} bytes at offset ${this.pos}, ${this.remaining} left)`);
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u8(field: string): number {
    return this.take(1, field)[0]!;
  }

  u16(field: string): number {
    const b = this.take(2, field);
    return (b[0]! << 8) | b[1]!;
  }

  u32(field: string): number {
    const b = this.take(4, field);
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  }

  u64(field: string): bigint {
    const b = this.take(8, field);
    return Buffer.from(b).readBigUInt64BE(0);
  }

  bytes(n: number, field: string): Uint8Array {
    return new Uint8Array(this.take(n, field));
  }

  /** TPM2B: UINT16 size then bytes; `max` bounds the size where the spec does (e.g. 32 for a SHA-256 digest). */
  tpm2b(field: string, max = 0xffff): Uint8Array {
    const n = this.u16(`${field}.size`);
    if (n > max) throw new TpmFormatError(`${this.what}: ${field} is ${n} bytes, over its bound of ${max}`);
    return this.bytes(n, field);
  }

  /** A TPM2B wrapping a structure: parses exactly `size` bytes with `parse`, refusing leftovers. */
  sized<T>(field: string, parse: (r: Reader) => T, opts: { allowEmpty?: boolean } = {}): T | undefined {
    const body = this.tpm2b(field);
    if (body.length === 0) {
      if (opts.allowEmpty) return undefined;
      throw new TpmFormatError(`${this.what}: ${field} is empty`);
    }
    const inner = new Reader(body, `${this.what}: ${field}`);
    const v = parse(inner);
    inner.end();
    return v;
  }

  /** Asserts every byte was consumed: trailing bytes mean we misread the structure. */
  end(): void {
    if (this.remaining !== 0) throw new TpmFormatError(`${this.what}: ${this.remaining} unexpected trailing bytes at offset ${this.pos}`);
  }
}
