/**
 * systemd's service notifications (sd_notify) for the kiosk and the verifier units (Type=notify, WatchdogSec=):
 * READY=1 once the service is up, STATUS= lines, STOPPING=1, and WATCHDOG=1 at half the watchdog interval while
 * the event loop turns and the service says it is healthy. Node has no Unix datagram sockets, so each message goes
 * through `systemd-notify --no-block` (a child process: the units say NotifyAccess=all). Outside systemd
 * (no NOTIFY_SOCKET) there is no notifier and nothing is sent.
 */
import { execFile } from 'node:child_process';

export type NotifyFields = Record<string, string>;

export class ServiceNotifier {
  private watchdog: NodeJS.Timeout | undefined;
  /** Messages not yet handed to systemd-notify, and the last failure (for `status`). */
  private pending: Promise<void> = Promise.resolve();
  lastError: string | null = null;

  private constructor(
    private readonly env: NodeJS.ProcessEnv,
    /** Half of WATCHDOG_USEC, in ms, when systemd asked this process for watchdog pings. */
    readonly watchdogIntervalMs: number | null,
    private readonly command: string,
  ) {}

  /** The notifier systemd asked for through the environment, or null when not started by systemd. */
  static fromEnvironment(env: NodeJS.ProcessEnv = process.env, command = 'systemd-notify'): ServiceNotifier | null {
    if (!env['NOTIFY_SOCKET']) return null;
    const usec = Number(env['WATCHDOG_USEC']);
    const forUs = env['WATCHDOG_PID'] === undefined || Number(env['WATCHDOG_PID']) === process.pid;
    return new ServiceNotifier(env, Number.isFinite(usec) && usec > 0 && forUs ? Math.max(1, Math.floor(usec / 2000)) : null, command);
  }

  /** Sends the fields in one message; messages leave in the order they were sent. */
  notify(fields: NotifyFields): Promise<void> {
    const args = ['--no-block', ...Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`)];
    this.pending = this.pending.then(
      () =>
        new Promise<void>((resolve) => {
          execFile(this.command, args, { env: this.env, timeout: 5000 }, (err) => {
            // A lost notification must never take the service down: the watchdog will say so if it matters.
            this.lastError = err ? err.message : null;
            resolve();
          });
        }),
    );
    return this.pending;
  }

  ready(status: string): Promise<void> {
    return this.notify({ READY: '1', STATUS: status });
  }

  status(text: string): Promise<void> {
    return this.notify({ STATUS: text });
  }

  stopping(status = 'stopping'): Promise<void> {
    this.stopWatchdog();
    return this.notify({ STOPPING: '1', STATUS: status });
  }

  /** Pings the watchdog at half its interval while `healthy()` says so; a missed ping makes systemd restart us. */
  startWatchdog(healthy: () => boolean = () => true): void {
    if (this.watchdogIntervalMs === null || this.watchdog) return;
    this.watchdog = setInterval(() => {
      if (healthy()) void this.notify({ WATCHDOG: '1' });
    }, this.watchdogIntervalMs);
    this.watchdog.unref();
  }

  stopWatchdog(): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
  }
}
