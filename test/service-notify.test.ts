/**
 * systemd notifications (protocol/service-notify.ts) as the units use them: a Unix datagram socket standing in
 * for systemd's NOTIFY_SOCKET (a python3 receiver: Node has no Unix datagram sockets), Debian's systemd-notify,
 * and a real `biokiosk verifier run` on mosquitto: READY=1 once it is up, WATCHDOG=1 pings, STOPPING=1 on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceNotifier } from '../protocol/service-notify.ts';
import { BIN } from './helpers/cli.ts';
import { tempDir } from './helpers/e2e.ts';
import { Mosquitto } from './helpers/mosquitto.ts';

const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    print(s.recv(65536).decode().replace("\\n", "|"), flush=True)
`;

/** A stand-in for systemd's notification socket: every datagram it receives, one string each. */
async function notifySocket(path: string): Promise<{ messages: string[]; waitFor: (re: RegExp) => Promise<string>; stop: () => void }> {
  const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (m: string) => void }> = [];
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve) => {
    lines.on('line', (line) => {
      if (line === 'listening') return resolve();
      messages.push(line);
      for (const w of [...waiters]) if (w.re.test(line)) waiters.splice(waiters.indexOf(w), 1) && w.resolve(line);
    });
  });
  return {
    messages,
    waitFor: (re) => {
      const seen = messages.find((m) => re.test(m));
      return seen !== undefined ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ re, resolve }));
    },
    stop: () => child.kill(),
  };
}

let dir: string;
let broker: Mosquitto;
const children: ChildProcess[] = [];
beforeAll(async () => {
  dir = await tempDir('bk-notify-');
  broker = await Mosquitto.start();
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await broker?.stop();
});

describe('ServiceNotifier', () => {
  it('exists only under systemd, and pings the watchdog only when the watchdog is for this process', () => {
    expect(ServiceNotifier.fromEnvironment({})).toBeNull();
    expect(ServiceNotifier.fromEnvironment({ NOTIFY_SOCKET: '/run/x' })!.watchdogIntervalMs).toBeNull();
    expect(ServiceNotifier.fromEnvironment({ NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '30000000' })!.watchdogIntervalMs).toBe(15_000);
    expect(ServiceNotifier.fromEnvironment({ NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid + 1) })!.watchdogIntervalMs).toBeNull();
  });

  it('hands its messages to systemd-notify, in order', async () => {
    const path = join(dir, 'unit.sock');
    const sock = await notifySocket(path);
    try {
      const n = ServiceNotifier.fromEnvironment({ ...process.env, NOTIFY_SOCKET: path })!;
      await n.ready('up');
      await n.status('serving');
      await n.stopping('bye');
      await sock.waitFor(/STOPPING=1/);
      expect(n.lastError).toBeNull();
      expect(sock.messages.filter((m) => !m.startsWith('BARRIER'))).toEqual(['READY=1|STATUS=up', 'STATUS=serving', 'STOPPING=1|STATUS=bye']);
    } finally {
      sock.stop();
    }
  });
});

describe('biokiosk verifier run under a notify socket', () => {
  it('says READY=1 once it is on the broker, pings the watchdog, and says STOPPING=1 on SIGTERM', async () => {
    const path = join(dir, 'verifier.sock');
    const sock = await notifySocket(path);
    try {
      const child = spawn(process.execPath, [BIN, 'verifier', 'run', '--broker', broker.url, '--dir', join(dir, 'verifier'), '--workers', '0'], {
        env: { ...process.env, NOTIFY_SOCKET: path, WATCHDOG_USEC: '400000' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      children.push(child);
      const ready = await sock.waitFor(/READY=1/);
      expect(ready).toMatch(/STATUS=verifier verifier-1 running on mqtt:\/\/127\.0\.0\.1:\d+/);
      await sock.waitFor(/^WATCHDOG=1$/);
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      await sock.waitFor(/STOPPING=1/);
      expect(await exited).toBe(0);
      const order = sock.messages.filter((m) => !m.startsWith('BARRIER')).map((m) => m.split('|')[0]);
      expect(order[0]).toBe('READY=1');
      expect(order.at(-1)).toBe('STOPPING=1');
    } finally {
      sock.stop();
    }
  });
});
