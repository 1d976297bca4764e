/**
 * The serial fingerprint path: time from "finger placed" (the virtual module reports a finger on the next GenImg
 * poll) to the 256x288 image in memory, through the real serialport stack over a socat pty, with the module pacing
 * its bytes at 57600 and 115200 baud, against the wire's limit: every byte of the last GenImg exchange, the UpImage
 * exchange and all data packets (headers and checksums included) x 10 bits / baud. The gap over the limit is the
 * poll interval (on average half of it, plus one GenImg round trip), timers and the stacks. Progress on stderr, one
 * JSON line on stdout.
 *
 *   npx tsx bench/fingerprint-serial.ts [--runs 3] [--poll-ms 20] [--packet-size 128]
 */
import { performance } from 'node:perf_hooks';
import { BITS_PER_BYTE, FingerprintSensor, IMAGE_PACKED_BYTES, packetBytes } from '../drivers/fingerprint/index.ts';
import { VirtualFingerprintSensor } from '../drivers/virtual/fingerprint-sensor.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} needs a non-negative integer`);
  return v;
}

const RUNS = Math.max(1, arg('--runs', 3));
const POLL_MS = arg('--poll-ms', 20);
const PACKET_SIZE = arg('--packet-size', 128);
const BAUDS = [57600, 115200];

const round = (v: number) => Math.round(v * 10) / 10;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Bytes on the wire from the finger-detecting GenImg to the last data packet. */
function wireBytes(packetSize: number): number {
  const command = packetBytes(1); // GenImg, UpImage: the instruction code only
  const ack = packetBytes(1);
  const dataPackets = Math.ceil(IMAGE_PACKED_BYTES / packetSize);
  return 2 * (command + ack) + dataPackets * packetBytes(packetSize);
}

const results: Record<string, unknown> = {};
for (const baud of BAUDS) {
  const module = await VirtualFingerprintSensor.start({ baud, packetSize: PACKET_SIZE, finger: false });
  const driver = new FingerprintSensor({ path: module.path, baudRate: baud });
  try {
    await driver.open();
    const times: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const capture = driver.captureImage({ pollMs: POLL_MS, timeoutMs: 60_000 });
      // Land the finger at a point in the poll cycle that varies from run to run.
      await sleep(150 + ((run * 37) % 100));
      const t0 = performance.now();
      await module.setFinger(true);
      const img = await capture;
      const ms = performance.now() - t0;
      await module.setFinger(false);
      if (img.data.length !== 256 * 288) throw new Error('short image');
      times.push(ms);
      process.stderr.write(`${baud} baud run ${run + 1}/${RUNS}: ${round(ms)} ms\n`);
    }
    const bytes = wireBytes(PACKET_SIZE);
    const wireMs = (bytes * BITS_PER_BYTE * 1000) / baud;
    const sorted = [...times].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    results[String(baud)] = {
      runs: RUNS,
      median_ms: round(median),
      min_ms: round(sorted[0]!),
      max_ms: round(sorted[sorted.length - 1]!),
      wire_bytes: bytes,
      wire_limit_ms: round(wireMs),
      over_limit_ms: round(median - wireMs),
      ratio_to_limit: Math.round((median / wireMs) * 1000) / 1000,
    };
    process.stderr.write(`${baud} baud: median ${round(median)} ms, wire limit ${round(wireMs)} ms (${bytes} bytes)\n`);
  } finally {
    await driver.close();
    await module.stop();
  }
}
process.stdout.write(JSON.stringify({ bench: 'fingerprint-serial', poll_ms: POLL_MS, packet_size: PACKET_SIZE, baud: results }) + '\n');
