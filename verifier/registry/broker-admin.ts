/**
 * Kiosks' broker logins added and removed while the fleet broker runs, through mosquitto's dynamic-security
 * control topic (the registry logs in as `admin:<id>`, a client whose role allows only that topic). A new kiosk
 * gets its own role (its own topics, provisioning/broker-security.ts) and a login with a random password; a
 * decommissioned kiosk's login is deleted, which also disconnects it. A verifier node uses the same client to
 * quarantine a kiosk that floods the stream (verifier/quarantine.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { BiokioskError } from '../../protocol/errors.ts';
import { deviceAcls, deviceRoleName, DYNSEC_CONTROL_TOPIC } from '../../provisioning/broker-security.ts';

export class BrokerAdminError extends BiokioskError {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(retryable ? 'BrokerUnavailable' : 'BrokerRefused', message, { kind: 'internal' });
  }
}

interface DynsecResponse {
  command: string;
  error?: string;
  correlationData?: string;
}

export class BrokerAdmin {
  private client: MqttClient | null = null;

  constructor(
    private readonly url: string,
    private readonly options: Partial<IClientOptions>,
    private readonly timeoutMs = 5000,
  ) {}

  /** A fresh password (24 random bytes, base64url: 32 characters). */
  static newPassword(): string {
    return randomBytes(24).toString('base64url');
  }

  /** Creates (or recreates) the kiosk's role and login. */
  async addDevice(ueid: string, password: string): Promise<void> {
    // Recreating after a decommission or a failed earlier attempt: what exists is replaced.
    await this.run([{ command: 'deleteClient', username: ueid }, { command: 'deleteRole', rolename: deviceRoleName(ueid) }], true);
    await this.run([
      { command: 'createRole', rolename: deviceRoleName(ueid), acls: deviceAcls(ueid).map((a) => ({ ...a, priority: 0 })) },
      { command: 'createClient', username: ueid, password, textname: `kiosk ${ueid}`, roles: [{ rolename: deviceRoleName(ueid) }] },
    ]);
  }

  /** Deletes the kiosk's login (the broker disconnects it) and its role. */
  async removeDevice(ueid: string): Promise<void> {
    await this.run([{ command: 'deleteClient', username: ueid }, { command: 'deleteRole', rolename: deviceRoleName(ueid) }], true);
  }

  /**
   * Cuts a kiosk off without deleting it: its role is taken away (every publish and subscribe then refused, on
   * either listener; the broker also drops its connection) and its password login disabled. Disabling alone is
   * not enough: mosquitto checks it only for password logins, and a certificate login reconnects at once.
   */
  async quarantineDevice(ueid: string): Promise<void> {
    // Tolerant: another node may have cut it already (the role is gone), which is the same outcome.
    await this.run([{ command: 'removeClientRole', username: ueid, rolename: deviceRoleName(ueid) }, { command: 'disableClient', username: ueid }], true);
  }

  /** Gives a quarantined kiosk its role and login back. */
  async releaseDevice(ueid: string): Promise<void> {
    // Tolerant: released already by another node, or never cut (a quarantine recorded whose cut had failed).
    await this.run([{ command: 'addClientRole', username: ueid, rolename: deviceRoleName(ueid), priority: 0 }, { command: 'enableClient', username: ueid }], true);
  }

  async warm(): Promise<void> {
    await this.connect();
  }

  async close(): Promise<void> {
    await this.client?.endAsync(true).catch(() => {});
    this.client = null;
  }

  private async connect(): Promise<MqttClient> {
    if (this.client?.connected) return this.client;
    await this.close();
    try {
      const c = await mqtt.connectAsync(this.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: this.timeoutMs, clientId: `${this.options.username ?? 'registry'}`, ...this.options });
      const granted = await c.subscribeAsync(`${DYNSEC_CONTROL_TOPIC}/response`, { qos: 1 });
      if (granted.some((g) => g.qos >= 0x80)) throw new BrokerAdminError(`the broker refused the admin login's subscription to ${DYNSEC_CONTROL_TOPIC}/response: is ${this.options.username} an admin in its access rules?`, false);
      this.client = c;
      return c;
    } catch (e) {
      if (e instanceof BrokerAdminError) throw e;
      throw new BrokerAdminError(`cannot reach the fleet broker at ${this.url} to change its access rules: ${(e as Error).message}`, true);
    }
  }

  /** Sends commands; refuses on an error unless `tolerant` (for deletions of what may not exist). */
  private async run(commands: Array<Record<string, unknown>>, tolerant = false): Promise<void> {
    const c = await this.connect();
    const corr = randomUUID();
    const withCorr = commands.map((x, i) => ({ ...x, correlationData: `${corr}:${i}` }));
    const answer = new Promise<DynsecResponse[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.off('message', on);
        reject(new BrokerAdminError(`the fleet broker did not answer an access-rule change within ${this.timeoutMs} ms`, true));
      }, this.timeoutMs);
      const on = (_t: string, payload: Buffer) => {
        let doc: { responses?: DynsecResponse[] };
        try {
          doc = JSON.parse(payload.toString('utf8')) as typeof doc;
        } catch {
          return;
        }
        const mine = (doc.responses ?? []).filter((r) => r.correlationData?.startsWith(`${corr}:`));
        if (mine.length === 0) return;
        clearTimeout(timer);
        c.off('message', on);
        resolve(mine);
      };
      c.on('message', on);
    });
    try {
      await c.publishAsync(DYNSEC_CONTROL_TOPIC, JSON.stringify({ commands: withCorr }), { qos: 1 });
    } catch (e) {
      await this.close();
      throw new BrokerAdminError(`lost the fleet broker while changing its access rules: ${(e as Error).message}`, true);
    }
    const responses = await answer;
    const failed = responses.filter((r) => r.error);
    if (failed.length > 0 && !tolerant) throw new BrokerAdminError(`the fleet broker refused ${failed.map((f) => `${f.command} (${f.error})`).join(', ')}`, false);
  }
}
