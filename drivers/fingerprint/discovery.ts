/**
 * Finding the module: the configured port first, then every candidate serial port, each at the usual baud rates,
 * probed with VfyPwd and ReadSysPara under a short timeout. Candidates come from /dev (USB-serial adapters, CDC-ACM,
 * the Pi's UART, on-board UARTs, by-id links), not from udev: `SerialPort.list()` needs udevadm, which kiosks and
 * containers often lack, so it is only consulted as an extra source and its failure ignored.
 */
import { readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import type { SystemParameters } from './commands.ts';
import { DEFAULT_BAUD } from './constants.ts';
import { FingerprintSensor } from './driver.ts';
import { ConfirmationError, SensorNotFoundError } from './errors.ts';

/** 57600 is the factory setting; the others are what installers commonly set. */
export const PROBE_BAUD_RATES = [DEFAULT_BAUD, 115200, 9600, 19200, 38400];

const DEV_PATTERNS: Array<{ dir: string; prefix: string }> = [
  { dir: '/dev/serial/by-id', prefix: '' },
  { dir: '/dev', prefix: 'ttyUSB' },
  { dir: '/dev', prefix: 'ttyACM' },
  { dir: '/dev', prefix: 'ttyAMA' },
  { dir: '/dev', prefix: 'ttyS' },
];

/** Serial device paths present on this machine, by-id links first, duplicates (same device) removed. */
export async function listCandidatePorts(): Promise<string[]> {
  const found: string[] = [];
  for (const { dir, prefix } of DEV_PATTERNS) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    const matching = names.filter((n) => n.startsWith(prefix) && (prefix === '' || /^\d+$/.test(n.slice(prefix.length))));
    matching.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    for (const n of matching) found.push(join(dir, n));
  }
  try {
    for (const p of await SerialPort.list()) found.push(p.path);
  } catch {
    // No udevadm: /dev is all we have.
  }
  const seen = new Set<string>();
  const out: string[] = [];
  for (const p of found) {
    const real = await realpath(p).catch(() => p);
    if (seen.has(real)) continue;
    seen.add(real);
    out.push(p);
  }
  return out;
}

export interface DiscoveryOptions {
  /** Tried first, at every baud rate. */
  port?: string;
  /** Tried first among the rates. */
  baudRate?: number;
  baudRates?: number[];
  /** Where to look after the configured port. Default: listCandidatePorts. */
  candidates?: () => Promise<string[]> | string[];
  address?: number;
  password?: number;
  /** Per-packet timeout while probing. Default 300 ms. */
  probeTimeoutMs?: number;
}

export interface DiscoveredSensor {
  path: string;
  baudRate: number;
  params: SystemParameters;
  /** Every (port, baud) tried and why it was not the module. */
  tried: Array<{ path: string; baudRate: number; error: string }>;
}

/** Probes one port at one baud rate: the module's parameters, or the error that ruled it out. */
export async function probePort(path: string, baudRate: number, o: { address?: number; password?: number; timeoutMs?: number } = {}): Promise<SystemParameters> {
  const sensor = new FingerprintSensor({
    path,
    baudRate,
    address: o.address,
    password: o.password,
    packetTimeoutMs: o.timeoutMs ?? 300,
    retries: 0,
    autoReopen: false,
    verifyOnOpen: false,
  });
  await sensor.open();
  try {
    await sensor.verifyPassword();
    return await sensor.readSystemParameters();
  } finally {
    await sensor.close();
  }
}

export async function discoverSensor(o: DiscoveryOptions = {}): Promise<DiscoveredSensor> {
  const rates = [...new Set([...(o.baudRate ? [o.baudRate] : []), ...(o.baudRates ?? PROBE_BAUD_RATES)])];
  const paths: string[] = [];
  if (o.port) paths.push(o.port);
  const listed = await (o.candidates ?? listCandidatePorts)();
  for (const p of listed) if (!paths.includes(p)) paths.push(p);
  const tried: DiscoveredSensor['tried'] = [];
  for (const path of paths) {
    for (const baudRate of rates) {
      try {
        const params = await probePort(path, baudRate, { address: o.address, password: o.password, timeoutMs: o.probeTimeoutMs });
        return { path, baudRate, params, tried };
      } catch (e) {
        // The module is there but refuses our password: stop here, probing on cannot help.
        if (e instanceof ConfirmationError && (e.confirmation === 0x13 || e.confirmation === 0x21)) throw e;
        tried.push({ path, baudRate, error: (e as Error).message });
        // A port that cannot be opened will not open at another rate either.
        if (e instanceof SensorNotFoundError) break;
      }
    }
  }
  throw new SensorNotFoundError(`no fingerprint module answered on ${paths.length} serial ports (${paths.join(', ') || 'none found'}) at ${rates.join('/')} baud`, { tried });
}
