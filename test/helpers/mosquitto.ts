/**
 * A real mosquitto broker for tests, on a free loopback port, MQTT 5 capable, restartable on the same port.
 * Fails (never skips) when mosquitto is missing: `npm test` installs it (scripts/test-env.mjs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function mosquittoBinary(): string {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) if (existsSync(p)) return p;
  throw new Error('mosquitto is not installed: run `npm test` (it installs the Debian package mosquitto) or apt-get install mosquitto');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ port, host });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export class Mosquitto {
  private child: ChildProcess | null = null;
  private log = '';

  private constructor(
    readonly port: number,
    private readonly configPath: string,
    readonly host = '127.0.0.1',
    private readonly netns?: string,
  ) {}

  get url(): string {
    return `mqtt://${this.host}:${this.port}`;
  }

  /** A broker on a free port of `host` (default loopback), inside network namespace `netns` when given. */
  static async start(options: { persistence?: boolean; host?: string; netns?: string; port?: number } = {}): Promise<Mosquitto> {
    const bin = mosquittoBinary();
    const dir = await mkdtemp(join(tmpdir(), 'bk-mosquitto-'));
    const port = options.port ?? (await freePort());
    const host = options.host ?? '127.0.0.1';
    const config = join(dir, 'mosquitto.conf');
    await writeFile(
      config,
      [
        `listener ${port} ${host}`,
        'allow_anonymous true',
        // Without it small QoS 1 packets wait for delayed ACKs (~40 ms a hop); production brokers want it too.
        'set_tcp_nodelay true',
        `persistence ${options.persistence ? 'true' : 'false'}`,
        `persistence_location ${dir}/`,
        'max_queued_messages 100000',
        'max_inflight_messages 1000',
        'log_type error',
        'log_type warning',
        '',
      ].join('\n'),
    );
    const m = new Mosquitto(port, config, host, options.netns);
    void bin;
    await m.startProcess();
    return m;
  }

  /** A broker from a configuration file someone else wrote; `port` is the one to wait for. */
  static async fromConfig(configPath: string, port: number): Promise<Mosquitto> {
    mosquittoBinary();
    const m = new Mosquitto(port, configPath);
    await m.startProcess();
    return m;
  }

  /** The last lines mosquitto wrote to stderr. */
  get output(): string {
    return this.log;
  }

  private async startProcess(): Promise<void> {
    const child = this.netns
      ? spawn('ip', ['netns', 'exec', this.netns, mosquittoBinary(), '-c', this.configPath], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(mosquittoBinary(), ['-c', this.configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => {
      this.log = (this.log + d.toString()).slice(-4000);
    });
    this.child = child;
    try {
      await waitForPort(this.port, 10_000, this.host);
    } catch (e) {
      throw new Error(`${(e as Error).message}; mosquitto said: ${this.log}`);
    }
  }

  /** Stops the broker (SIGKILL by default, as a crash or power cut would). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
    this.child = null;
  }

  /**
   * Freezes the broker (SIGSTOP) or lets it run again (SIGCONT): a hung broker, whose connections stay open and whose
   * kernel still takes bytes, but which answers nothing.
   */
  freeze(frozen: boolean): void {
    this.child?.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  /** Starts the process again after stop(). */
  async resume(): Promise<void> {
    if (this.child && this.child.exitCode === null) return;
    await this.startProcess();
  }

  async restart(downMs = 200): Promise<void> {
    await this.stop();
    await new Promise((r) => setTimeout(r, downMs));
    await this.startProcess();
  }
}
