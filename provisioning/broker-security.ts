/**
 * The fleet broker's access rules, as the configuration of mosquitto's dynamic-security plugin
 * (deploy/mosquitto/fleet.conf loads it). Why that plugin and not an acl_file: mosquitto 2.0's acl_file never
 * checks SUBSCRIBE, so a kiosk could join the verifiers' shared group and, picked in turn, swallow every other
 * attestation (the broker then refuses it delivery and the message is gone). The plugin checks subscriptions,
 * denies everything not granted, and has no "%u" patterns, so each device gets a role naming its own topics.
 *
 * - a kiosk (username = its device id, the CN of its certificate) publishes only its own attestations, nonce
 *   requests and status, and subscribes only to its own verdicts and challenge answers;
 * - a verifier node (username `verifier:<id>`, a name no device id can be) subscribes only through the shared
 *   group to every device's attestations and nonce requests, and publishes verdicts and challenge answers.
 *
 * Pure: the CLI (`biokiosk broker acl`) writes the result; passwords are hashed as the plugin expects
 * (PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte hash).
 */
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { BiokioskError } from '../protocol/errors.ts';
import { isValidDeviceId, TOPIC_ROOT } from '../protocol/topics.ts';

export const VERIFIER_USERNAME_PREFIX = 'verifier:';
/** The registry's login for changing the access rules live (dynamic-security's control topic). */
export const ADMIN_USERNAME_PREFIX = 'admin:';
export const DYNSEC_CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
export const DEFAULT_VERIFIER_GROUP = 'verifiers';
// Checked at every connect by the broker; passwords are random and long, so this guards the file, not weak secrets.
const PBKDF2_ITERATIONS = 10_000;

export interface BrokerIdentity {
  id: string;
  /** Set for a party that connects with username and password instead of a client certificate. */
  password?: string;
}

export interface FleetAccess {
  devices: BrokerIdentity[];
  verifiers: BrokerIdentity[];
  /** Registries allowed to add and remove kiosks' logins while the broker runs (username `admin:<id>`). */
  admins?: BrokerIdentity[];
  /** The verifiers' shared-subscription group. */
  group?: string;
}

export type Acl = { acltype: 'publishClientSend' | 'publishClientReceive' | 'subscribeLiteral' | 'unsubscribeLiteral'; topic: string; allow: true; priority?: number };

export interface DynsecConfig {
  defaultACLAccess: { publishClientSend: false; publishClientReceive: false; subscribe: false; unsubscribe: true };
  clients: Array<{ username: string; textname: string; roles: Array<{ rolename: string }>; password?: string; salt?: string; iterations?: number }>;
  groups: [];
  roles: Array<{ rolename: string; acls: Acl[] }>;
}

export function verifierUsername(id: string): string {
  return `${VERIFIER_USERNAME_PREFIX}${id}`;
}

export function adminUsername(id: string): string {
  return `${ADMIN_USERNAME_PREFIX}${id}`;
}

export function deviceRoleName(id: string): string {
  return `device:${id}`;
}

/** Topics a device may use: its own subtree only. */
export function deviceAcls(id: string): Acl[] {
  const t = (kind: string) => `${TOPIC_ROOT}/${id}/${kind}`;
  return [
    { acltype: 'publishClientSend', topic: t('attestations'), allow: true },
    { acltype: 'publishClientSend', topic: t('challenges/request'), allow: true },
    { acltype: 'publishClientSend', topic: t('status'), allow: true },
    { acltype: 'subscribeLiteral', topic: t('verdicts'), allow: true },
    { acltype: 'subscribeLiteral', topic: t('challenges/response'), allow: true },
    { acltype: 'unsubscribeLiteral', topic: t('verdicts'), allow: true },
    { acltype: 'unsubscribeLiteral', topic: t('challenges/response'), allow: true },
    { acltype: 'publishClientReceive', topic: t('verdicts'), allow: true },
    { acltype: 'publishClientReceive', topic: t('challenges/response'), allow: true },
  ];
}

function verifierAcls(group: string): Acl[] {
  const all = (kind: string) => `${TOPIC_ROOT}/+/${kind}`;
  return [
    { acltype: 'subscribeLiteral', topic: `$share/${group}/${all('attestations')}`, allow: true },
    { acltype: 'subscribeLiteral', topic: `$share/${group}/${all('challenges/request')}`, allow: true },
    { acltype: 'publishClientReceive', topic: all('attestations'), allow: true },
    { acltype: 'publishClientReceive', topic: all('challenges/request'), allow: true },
    { acltype: 'publishClientSend', topic: all('verdicts'), allow: true },
    { acltype: 'publishClientSend', topic: all('challenges/response'), allow: true },
  ];
}

function adminAcls(): Acl[] {
  return [
    { acltype: 'publishClientSend', topic: DYNSEC_CONTROL_TOPIC, allow: true },
    { acltype: 'subscribeLiteral', topic: `${DYNSEC_CONTROL_TOPIC}/response`, allow: true },
    { acltype: 'publishClientReceive', topic: `${DYNSEC_CONTROL_TOPIC}/response`, allow: true },
  ];
}

function passwordFields(password: string | undefined): { password?: string; salt?: string; iterations?: number } {
  if (password === undefined) return {};
  if (password.length < 16) throw new BiokioskError('WeakPassword', 'a broker password must be at least 16 characters (use a random one)');
  const salt = randomBytes(12);
  const hash = pbkdf2Sync(password, salt, PBKDF2_ITERATIONS, 64, 'sha512');
  return { password: hash.toString('base64'), salt: salt.toString('base64'), iterations: PBKDF2_ITERATIONS };
}

export function fleetBrokerSecurity(access: FleetAccess): DynsecConfig {
  const group = access.group ?? DEFAULT_VERIFIER_GROUP;
  if (!isValidDeviceId(group)) throw new BiokioskError('BadConfig', `share group "${group}" must be 1-64 characters of A-Z a-z 0-9 . _ -`);
  const seen = new Set<string>();
  const once = (username: string) => {
    if (seen.has(username)) throw new BiokioskError('BadConfig', `${username} is listed twice`);
    seen.add(username);
  };
  const config: DynsecConfig = {
    defaultACLAccess: { publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: true },
    clients: [],
    groups: [],
    roles: [{ rolename: 'verifier', acls: verifierAcls(group) }],
  };
  for (const d of access.devices) {
    if (!isValidDeviceId(d.id)) throw new BiokioskError('BadConfig', `device id "${d.id}" must be 1-64 characters of A-Z a-z 0-9 . _ -`);
    once(d.id);
    config.roles.push({ rolename: deviceRoleName(d.id), acls: deviceAcls(d.id) });
    config.clients.push({ username: d.id, textname: `kiosk ${d.id}`, roles: [{ rolename: deviceRoleName(d.id) }], ...passwordFields(d.password) });
  }
  for (const v of access.verifiers) {
    if (!isValidDeviceId(v.id)) throw new BiokioskError('BadConfig', `verifier id "${v.id}" must be 1-64 characters of A-Z a-z 0-9 . _ -`);
    const username = verifierUsername(v.id);
    once(username);
    config.clients.push({ username, textname: `verifier node ${v.id}`, roles: [{ rolename: 'verifier' }], ...passwordFields(v.password) });
  }
  if ((access.admins ?? []).length > 0) config.roles.push({ rolename: 'dynsec-admin', acls: adminAcls() });
  for (const a of access.admins ?? []) {
    if (!isValidDeviceId(a.id)) throw new BiokioskError('BadConfig', `admin id "${a.id}" must be 1-64 characters of A-Z a-z 0-9 . _ -`);
    const username = adminUsername(a.id);
    once(username);
    config.clients.push({ username, textname: `registry ${a.id}`, roles: [{ rolename: 'dynsec-admin' }], ...passwordFields(a.password) });
  }
  return config;
}
