/**
 * Command payloads and acknowledge parsers (pure). Each builder returns the payload of a command packet; each parser
 * takes an acknowledge payload whose confirmation code is already known to be 0x00.
 */
import { BAUD_UNIT, CMD, packetSizeFromCode } from './constants.ts';
import { ProtocolError } from './errors.ts';

export function u32(v: number): number[] {
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

export const payloads = {
  vfyPwd: (password: number) => Uint8Array.from([CMD.vfyPwd, ...u32(password)]),
  readSysPara: () => Uint8Array.of(CMD.readSysPara),
  genImg: () => Uint8Array.of(CMD.genImg),
  upImage: () => Uint8Array.of(CMD.upImage),
  setSysPara: (param: number, value: number) => Uint8Array.of(CMD.setSysPara, param, value),
  /** R503 AuraLedConfig: control (1 breathing, 2 flashing, 3 on, 4 off, 5 fade in, 6 fade out), speed, colour, count. */
  auraLedConfig: (control: number, speed: number, color: number, count: number) => Uint8Array.of(CMD.auraLedConfig, control, speed, color, count),
  openLed: () => Uint8Array.of(CMD.openLed),
  closeLed: () => Uint8Array.of(CMD.closeLed),
};

/** ReadSysPara's 16 bytes after the confirmation code. */
export interface SystemParameters {
  /** Status register: bit 0 busy, bit 1 finger matched, bit 2 password verified, bit 3 image buffer holds a valid image. */
  status: number;
  systemId: number;
  librarySize: number;
  securityLevel: number;
  address: number;
  /** Data packet size code 0..3 and what it means in bytes (32, 64, 128, 256). */
  packetSizeCode: number;
  packetSize: number;
  /** N with baud = N x 9600. */
  baudMultiplier: number;
  baud: number;
}

export const SYS_PARA_BYTES = 16;

export function parseSystemParameters(ack: Uint8Array): SystemParameters {
  if (ack.length < 1 + SYS_PARA_BYTES) throw new ProtocolError(`ReadSysPara: acknowledge of ${ack.length} bytes, expected ${1 + SYS_PARA_BYTES}`);
  const b = Buffer.from(ack.buffer, ack.byteOffset + 1, SYS_PARA_BYTES);
  const packetSizeCode = b.readUInt16BE(12);
  const packetSize = packetSizeFromCode(packetSizeCode);
  if (packetSize === undefined) throw new ProtocolError(`ReadSysPara: packet size code ${packetSizeCode} is not 0..3`);
  const baudMultiplier = b.readUInt16BE(14);
  return {
    status: b.readUInt16BE(0),
    systemId: b.readUInt16BE(2),
    librarySize: b.readUInt16BE(4),
    securityLevel: b.readUInt16BE(6),
    address: b.readUInt32BE(8),
    packetSizeCode,
    packetSize,
    baudMultiplier,
    baud: baudMultiplier * BAUD_UNIT,
  };
}

export function encodeSystemParameters(p: Omit<SystemParameters, 'packetSize' | 'baud'>): Uint8Array {
  const b = Buffer.alloc(SYS_PARA_BYTES);
  b.writeUInt16BE(p.status, 0);
  b.writeUInt16BE(p.systemId, 2);
  b.writeUInt16BE(p.librarySize, 4);
  b.writeUInt16BE(p.securityLevel, 6);
  b.writeUInt32BE(p.address >>> 0, 8);
  b.writeUInt16BE(p.packetSizeCode, 12);
  b.writeUInt16BE(p.baudMultiplier, 14);
  return b;
}

/** LED colours of the R503 ring (older firmware: 1-3 only). */
export const AURA_COLOR = { red: 1, blue: 2, purple: 3, green: 4, yellow: 5, cyan: 6, white: 7 } as const;
export const AURA_CONTROL = { breathing: 1, flashing: 2, on: 3, off: 4, fadeIn: 5, fadeOut: 6 } as const;
