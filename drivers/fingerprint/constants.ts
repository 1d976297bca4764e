/**
 * Protocol constants of the ZFM family of optical fingerprint modules (ZFM-20, R307, AS608, R503): the numbers
 * in the vendors' datasheets, named once so the codec, the driver and the virtual sensor agree on every byte.
 */

/** Every packet starts with these two bytes. */
export const HEADER = 0xef01;
/** The factory address; a module answers only packets addressed to its own address. */
export const DEFAULT_ADDRESS = 0xffffffff;
/** The factory password (0: no password set). */
export const DEFAULT_PASSWORD = 0x00000000;
/** The factory baud rate (N = 6, 6 x 9600). */
export const DEFAULT_BAUD = 57600;

/** Packet identifiers. */
export const PID = {
  command: 0x01,
  data: 0x02,
  ack: 0x07,
  endData: 0x08,
} as const;
export type Pid = (typeof PID)[keyof typeof PID];
export const PIDS: readonly number[] = Object.values(PID);

/** header(2) + address(4) + pid(1) + length(2); the checksum(2) follows the payload. */
export const PREFIX_BYTES = 9;
export const CHECKSUM_BYTES = 2;
/** Bytes a packet adds around its payload. */
export const PACKET_OVERHEAD = PREFIX_BYTES + CHECKSUM_BYTES;
/** The largest payload the family sends: a 256-byte data packet. The length field may not exceed this + 2. */
export const MAX_PAYLOAD = 256;

/** Instruction codes (the first payload byte of a command packet). */
export const CMD = {
  genImg: 0x01,
  img2Tz: 0x02,
  upImage: 0x0a,
  downImage: 0x0b,
  setSysPara: 0x0e,
  readSysPara: 0x0f,
  setPwd: 0x12,
  vfyPwd: 0x13,
  setAddr: 0x15,
  /** R503 (and R502): the ring LED ("Aura") controller. */
  auraLedConfig: 0x35,
  /** R503: answers 0x00 when the sensor is alive. */
  checkSensor: 0x36,
  /** R503: answers 0x00 when the module is ready. */
  handShake: 0x40,
  /** Modules with a plain backlight (FPM10A/ZFM-60 style boards, R551, some AS608 boards): LED on / off. */
  openLed: 0x50,
  closeLed: 0x51,
} as const;

/** SetSysPara parameter numbers. */
export const SYS_PARAM = {
  baud: 4,
  securityLevel: 5,
  packetSize: 6,
} as const;

/** Packet size code (ReadSysPara / SetSysPara 6) -> data bytes per data packet. */
export const PACKET_SIZES = [32, 64, 128, 256] as const;
export function packetSizeFromCode(code: number): number | undefined {
  return PACKET_SIZES[code];
}
export function packetSizeCode(bytes: number): number {
  const i = (PACKET_SIZES as readonly number[]).indexOf(bytes);
  if (i < 0) throw new RangeError(`packet size must be one of ${PACKET_SIZES.join(', ')}, got ${bytes}`);
  return i;
}

/** Baud rates are N x 9600, N = 1..12. */
export const BAUD_UNIT = 9600;
export const MAX_BAUD_MULTIPLIER = 12;

/** The image the family uploads: 256 x 288, 4 bits per pixel, two pixels per byte, high nibble first. */
export const IMAGE_WIDTH = 256;
export const IMAGE_HEIGHT = 288;
export const IMAGE_PACKED_BYTES = (IMAGE_WIDTH * IMAGE_HEIGHT) / 2;

/** Bits on the wire per byte: start bit, 8 data bits, stop bit (8N1). */
export const BITS_PER_BYTE = 10;
