/**
 * The virtual fingerprint sensor: a simulated ZFM-family module (see fingerprint-sensor-core.ts) in a process of its
 * own behind a socat pty pair. `path` is the pty the driver opens, through the real serialport stack, exactly as it
 * would open /dev/ttyUSB0. The handle steers the module: faults, finger on/off, unplug and plug back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { childProcessArgs, PACKAGE_ROOT } from '../../protocol/runtime.ts';
import type { SensorFault, SimulatedModuleConfig } from './fingerprint-sensor-core.ts';

export type { SensorFault, SimulatedModuleConfig } from './fingerprint-sensor-core.ts';
export { loadSensorImage, patternImage } from './fingerprint-sensor-core.ts';

const ENTRY = childProcessArgs(import.meta.url, 'fingerprint-sensor-process');

export type VirtualFingerprintSensorOptions = Omit<SimulatedModuleConfig, 'hostPath' | 'sensorPath'> & {
  /** Where the pty links go (default: a new temporary folder, removed on stop). */
  dir?: string;
  /** The host link's name in `dir`. Default `ttyFP0`. */
  name?: string;
  /** How long to wait for the process to come up. Default 20 s. */
  startTimeoutMs?: number;
};

type Reply = { id: number; ok: boolean; error?: string; [k: string]: unknown };

export class VirtualFingerprintSensor extends EventEmitter {
  /** The pty the driver opens. */
  readonly path: string;
  private readonly child: ChildProcess;
  private readonly ownDir: string | null;
  private nextId = 1;
  private readonly pending = new Map<number, (r: Reply) => void>();
  private exited = false;
  /** Every event line the module printed (bounded). */
  readonly events: Array<Record<string, unknown>> = [];

  private constructor(path: string, child: ChildProcess, ownDir: string | null) {
    super();
    this.path = path;
    this.child = child;
    this.ownDir = ownDir;
  }

  static async start(o: VirtualFingerprintSensorOptions = {}): Promise<VirtualFingerprintSensor> {
    const ownDir = o.dir ? null : await mkdtemp(join(tmpdir(), 'bk-fpsensor-'));
    const dir = o.dir ?? ownDir!;
    const name = o.name ?? 'ttyFP0';
    const { dir: _d, name: _n, startTimeoutMs, ...rest } = o;
    const config: SimulatedModuleConfig = { ...rest, hostPath: join(dir, name), sensorPath: join(dir, `${name}.module`) };
    const child = spawn(process.execPath, [...ENTRY, JSON.stringify(config)], { cwd: PACKAGE_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const sensor = new VirtualFingerprintSensor(config.hostPath, child, ownDir);
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr = (stderr + String(d)).slice(-4000)));
    const ready = new Promise<void>((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new Error(`virtual fingerprint sensor did not start within ${startTimeoutMs ?? 20_000} ms: ${stderr}`)), startTimeoutMs ?? 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`virtual fingerprint sensor exited with ${code}: ${stderr}`));
      });
      sensor.on('event', (e: Record<string, unknown>) => {
        if (e['event'] === 'ready') {
          clearTimeout(timer);
          resolveReady();
        } else if (e['event'] === 'failed') {
          clearTimeout(timer);
          reject(new Error(`virtual fingerprint sensor failed: ${String(e['message'])}`));
        }
      });
    });
    child.on('exit', () => {
      sensor.exited = true;
      for (const [, r] of sensor.pending) r({ id: 0, ok: false, error: 'the virtual sensor process exited' });
      sensor.pending.clear();
    });
    createInterface({ input: child.stdout! }).on('line', (line) => sensor.onLine(line));
    try {
      await ready;
    } catch (e) {
      child.kill('SIGKILL');
      if (ownDir) await rm(ownDir, { recursive: true, force: true });
      throw e;
    }
    return sensor;
  }

  private onLine(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (typeof msg['event'] === 'string') {
      this.events.push(msg);
      if (this.events.length > 1000) this.events.shift();
      this.emit('event', msg);
      this.emit(msg['event'] as string, msg);
      return;
    }
    const id = msg['id'];
    if (typeof id === 'number') {
      const r = this.pending.get(id);
      this.pending.delete(id);
      r?.(msg as Reply);
    }
  }

  /** Sends one control message and waits for its answer. */
  async control(cmd: string, args: Record<string, unknown> = {}): Promise<Reply> {
    if (this.exited) throw new Error('the virtual sensor process has exited');
    const id = this.nextId++;
    const reply = new Promise<Reply>((r) => this.pending.set(id, r));
    this.child.stdin!.write(JSON.stringify({ id, cmd, ...args }) + '\n');
    const r = await reply;
    if (!r.ok) throw new Error(`virtual sensor: ${cmd}: ${r.error ?? 'failed'}`);
    return r;
  }

  fault(f: SensorFault): Promise<Reply> {
    return this.control('fault', { fault: f });
  }
  async setFinger(present: boolean): Promise<number> {
    return (await this.control('finger', { present })).t as number;
  }
  async unplug(): Promise<void> {
    await this.control('disconnect');
  }
  async plugIn(): Promise<void> {
    await this.control('return');
  }
  async status(): Promise<Record<string, unknown>> {
    return (await this.control('status'))['status'] as Record<string, unknown>;
  }
  /** The module's stored image `index` (8-bit, 256x288, before 4-bit quantisation). */
  async image(index: number): Promise<Uint8Array> {
    return new Uint8Array(Buffer.from((await this.control('image', { index }))['image'] as string, 'base64'));
  }
  /** Resolves with the next event of this name. */
  next(event: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return new Promise((resolveEvent, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${event} event within ${timeoutMs} ms`)), timeoutMs);
      this.once(event, (e: Record<string, unknown>) => {
        clearTimeout(t);
        resolveEvent(e);
      });
    });
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
      this.child.stdin!.write(JSON.stringify({ id: this.nextId++, cmd: 'quit' }) + '\n');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    if (this.ownDir) await rm(this.ownDir, { recursive: true, force: true });
  }
}
