/**
 * The virtual fingerprint sensor's process: `node --import tsx fingerprint-sensor-process.ts '<json config>'`.
 * Runs one SimulatedModule (with its socat pty pair) and takes control messages as JSON lines on stdin:
 *   {"id":1,"cmd":"fault","fault":{...}} | "finger" {"present":bool} | "disconnect" | "return" | "status" | "image" {"index"} | "quit"
 * and answers each with {"id":1,"ok":true,...} (or "ok":false,"error") on stdout, among {"event":...} lines.
 * It ends (stopping socat) on "quit", on SIGTERM, or when stdin closes because its parent went away.
 */
import { createInterface } from 'node:readline';
import { SimulatedModule, type SensorFault, type SimulatedModuleConfig } from './fingerprint-sensor-core.ts';

function out(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as SimulatedModuleConfig;
  const module = new SimulatedModule(config, (e) => out({ ...e, t: Date.now() }));
  let quitting = false;
  const quit = async (code: number): Promise<void> => {
    if (quitting) return;
    quitting = true;
    await module.stop().catch(() => {});
    process.exit(code);
  };
  process.on('SIGTERM', () => void quit(0));
  process.on('SIGINT', () => void quit(0));
  try {
    await module.start();
  } catch (e) {
    out({ event: 'failed', message: (e as Error).message });
    await quit(1);
    return;
  }
  out({ event: 'ready', hostPath: config.hostPath, t: Date.now() });
  const rl = createInterface({ input: process.stdin });
  rl.on('close', () => void quit(0));
  for await (const line of rl) {
    if (!line.trim()) continue;
    let msg: { id?: number; cmd?: string; [k: string]: unknown };
    try {
      msg = JSON.parse(line);
    } catch {
      out({ ok: false, error: 'not JSON' });
      continue;
    }
    const reply = (extra: Record<string, unknown> = {}): void => out({ id: msg.id, ok: true, t: Date.now(), ...extra });
    try {
      switch (msg.cmd) {
        case 'fault':
          module.arm(msg['fault'] as SensorFault);
          reply();
          break;
        case 'finger':
          module.setFinger(Boolean(msg['present']));
          reply();
          break;
        case 'disconnect':
          await module.disconnect('requested');
          reply();
          break;
        case 'return':
          await module.connect();
          reply();
          break;
        case 'status':
          reply({ status: module.status() });
          break;
        case 'image':
          reply({ image: module.image(Number(msg['index'] ?? 0)) });
          break;
        case 'quit':
          reply();
          await quit(0);
          break;
        default:
          out({ id: msg.id, ok: false, error: `unknown command ${String(msg.cmd)}` });
      }
    } catch (e) {
      out({ id: msg.id, ok: false, error: (e as Error).message });
    }
  }
}

void main();
