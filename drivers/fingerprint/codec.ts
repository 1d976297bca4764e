/**
 * The packet codec (pure functions):
 *   EF 01 | address (4, big-endian) | pid (1) | length (2) = payload + 2 | payload | checksum (2)
 * where checksum = (pid + both length bytes + every payload byte) mod 65536. The address is not in the sum.
 */
import { CHECKSUM_BYTES, HEADER, MAX_PAYLOAD, PIDS, PREFIX_BYTES } from './constants.ts';
import { BadChecksumError, BadLengthError, UnknownPidError } from './errors.ts';

export interface Packet {
  address: number;
  pid: number;
  payload: Uint8Array;
}

export function checksum(pid: number, length: number, payload: Uint8Array): number {
  let sum = pid + (length >> 8) + (length & 0xff);
  for (const b of payload) sum += b;
  return sum & 0xffff;
}

/** The bytes of one packet. Throws on a payload the length field cannot carry or an unknown pid. */
export function encodePacket(p: Packet, maxPayload = MAX_PAYLOAD): Buffer {
  if (!PIDS.includes(p.pid)) throw new UnknownPidError(p.pid);
  if (p.payload.length > maxPayload) throw new BadLengthError(p.payload.length + CHECKSUM_BYTES, `payload of ${p.payload.length} bytes exceeds ${maxPayload}`);
  const length = p.payload.length + CHECKSUM_BYTES;
  const out = Buffer.alloc(PREFIX_BYTES + length);
  out.writeUInt16BE(HEADER, 0);
  out.writeUInt32BE(p.address >>> 0, 2);
  out.writeUInt8(p.pid, 6);
  out.writeUInt16BE(length, 7);
  out.set(p.payload, PREFIX_BYTES);
  out.writeUInt16BE(checksum(p.pid, length, p.payload), PREFIX_BYTES + p.payload.length);
  return out;
}

/** Checks the prefix of a packet (at least PREFIX_BYTES of `buf` from `at`) and returns its length field. */
export function checkPrefix(buf: Uint8Array, at: number, maxPayload = MAX_PAYLOAD): { pid: number; length: number } {
  const pid = buf[at + 6]!;
  const length = (buf[at + 7]! << 8) | buf[at + 8]!;
  if (!PIDS.includes(pid)) throw new UnknownPidError(pid);
  if (length < CHECKSUM_BYTES) throw new BadLengthError(length, `below the ${CHECKSUM_BYTES} checksum bytes`);
  // An acknowledge carries at least its confirmation code.
  if (pid === 0x07 && length < CHECKSUM_BYTES + 1) throw new BadLengthError(length, 'an acknowledge without a confirmation code');
  if (length > maxPayload + CHECKSUM_BYTES) throw new BadLengthError(length, `above the ${maxPayload + CHECKSUM_BYTES} allowed`);
  return { pid, length };
}

/**
 * Decodes exactly one packet from `buf` (which must start with the header and hold the whole packet; extra bytes
 * after it are an error). Throws the typed packet errors.
 */
export function decodePacket(buf: Uint8Array, maxPayload = MAX_PAYLOAD): Packet {
  if (buf.length < PREFIX_BYTES + CHECKSUM_BYTES) throw new BadLengthError(buf.length, `a packet is at least ${PREFIX_BYTES + CHECKSUM_BYTES} bytes`);
  if (((buf[0]! << 8) | buf[1]!) !== HEADER) throw new BadLengthError(buf.length, 'does not start with the header EF 01');
  const { pid, length } = checkPrefix(buf, 0, maxPayload);
  if (buf.length !== PREFIX_BYTES + length) throw new BadLengthError(length, `the length field says ${PREFIX_BYTES + length} bytes in all, got ${buf.length}`);
  const payload = buf.subarray(PREFIX_BYTES, PREFIX_BYTES + length - CHECKSUM_BYTES);
  const actual = (buf[buf.length - 2]! << 8) | buf[buf.length - 1]!;
  const expected = checksum(pid, length, payload);
  if (actual !== expected) throw new BadChecksumError(expected, actual);
  const address = ((buf[2]! << 24) | (buf[3]! << 16) | (buf[4]! << 8) | buf[5]!) >>> 0;
  return { address, pid, payload: Uint8Array.from(payload) };
}

/** The number of bytes a packet with a payload of `n` bytes takes on the wire. */
export function packetBytes(n: number): number {
  return PREFIX_BYTES + n + CHECKSUM_BYTES;
}
