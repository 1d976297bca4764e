/** `biokiosk capture`: pulls one raw image from a capture device (today: a ZFM-family fingerprint module on a serial port). */
import type { Command } from 'commander';
import { UsageError } from '../protocol/errors.ts';
import { ms, parseNumber, printJson } from './options.ts';

interface CaptureCliOptions {
  modality?: string;
  port?: string;
  out: string;
  baud?: number;
  password?: number;
  address?: number;
  timeout: number;
  json?: boolean;
}

function parseHex32(name: string): (value: string) => number {
  return (value: string) => {
    if (!/^(0x)?[0-9a-f]{1,8}$/i.test(value)) throw new UsageError(`${name} must be 1 to 8 hex digits (e.g. 0x0 or FFFFFFFF), got "${value}"`);
    return Number.parseInt(value.replace(/^0x/i, ''), 16) >>> 0;
  };
}

export function registerCapture(program: Command): void {
  program
    .command('capture')
    .description('Capture one image from a device: waits for a finger on the module, uploads its 256x288 image, writes it as a PNG.')
    .requiredOption('--modality <m>', 'fingerprint (a ZFM-family optical module: R307, R503, AS608, ZFM-20)')
    .requiredOption('--out <file>', 'the PNG to write (8-bit gray; the module delivers 4 bits per pixel)')
    .option('--port <path>', 'serial port of the module (default: probe /dev/ttyUSB*, ttyACM*, ttyAMA*, ttyS*, serial/by-id)')
    .option('--baud <n>', 'baud rate (default 57600, then the usual others when probing)', parseNumber('--baud', 1200, 921_600, true))
    .option('--password <hex>', 'module password (default 0)', parseHex32('--password'))
    .option('--address <hex>', 'module address (default FFFFFFFF)', parseHex32('--address'))
    .option('--timeout <ms>', 'how long to wait for a finger', parseNumber('--timeout', 100, 600_000, true), 15_000)
    .option('--json', 'print one JSON object')
    .action(async (o: CaptureCliOptions) => {
      if (o.modality !== 'fingerprint') throw new UsageError(`capture supports: fingerprint (got "${o.modality}")`);
      if (!/\.png$/i.test(o.out)) throw new UsageError(`--out must name a .png file, got "${o.out}"`);
      const { FingerprintSensor, discoverSensor } = await import('../drivers/fingerprint/index.ts');
      const sharp = (await import('sharp')).default;
      const t0 = performance.now();
      // A port given with a baud rate is used as is; otherwise probe (the given port first).
      let path = o.port;
      let baudRate = o.baud;
      if (!path || !baudRate) {
        const found = await discoverSensor({ port: o.port, baudRate: o.baud, address: o.address, password: o.password, candidates: o.port ? () => [] : undefined });
        path = found.path;
        baudRate = found.baudRate;
      }
      const sensor = new FingerprintSensor({ path, baudRate, address: o.address, password: o.password, autoReopen: false });
      await sensor.open();
      try {
        if (!o.json) process.stderr.write(`put a finger on the sensor (${path}, ${baudRate} baud) ...\n`);
        const img = await sensor.captureImage({ timeoutMs: o.timeout });
        await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 1 } }).png().toFile(o.out);
        const total = performance.now() - t0;
        if (o.json) printJson({ ok: true, modality: 'fingerprint', port: path, baud: baudRate, out: o.out, width: img.width, height: img.height, ms: total });
        else process.stdout.write(`wrote ${img.width}x${img.height} image from ${path} to ${o.out} in ${ms(total)}\n`);
      } finally {
        await sensor.close();
      }
    });
}
