/**
 * MQTT topic names: everything lives under `biokiosk/v1/{deviceId}/...`, one subtree per device, so broker ACLs
 * can confine each kiosk to its own subtree and verifiers share the attestation load with `$share` groups.
 *
 *   biokiosk/v1/{deviceId}/attestations          kiosk → verifiers (QoS 1)
 *   biokiosk/v1/{deviceId}/verdicts              verifier → kiosk (the MQTT 5 response topic of an attestation)
 *   biokiosk/v1/{deviceId}/challenges/request    kiosk → verifiers: "give me a nonce"
 *   biokiosk/v1/{deviceId}/challenges/response   verifier → kiosk
 *   biokiosk/v1/{deviceId}/status                retained; 'online', and 'offline' as the last will
 */
import { DEVICE_ID_PATTERN } from './claims.ts';
import { Rejection } from './rejections.ts';

export const TOPIC_ROOT = 'biokiosk/v1';

export const TOPIC_KINDS = ['attestations', 'verdicts', 'challenges/request', 'challenges/response', 'status'] as const;
export type TopicKind = (typeof TOPIC_KINDS)[number];

/** Device ids are one topic level: no '/', '+', '#', and not starting with '$' (the pattern rules all out). */
export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id);
}

export function assertDeviceId(id: string): string {
  if (!isValidDeviceId(id)) throw new Rejection('malformed', `Device id ${JSON.stringify(id.slice(0, 80))} must be 1-64 characters of A-Z a-z 0-9 . _ -.`);
  return id;
}

export function topicFor(kind: TopicKind, deviceId: string): string {
  return `${TOPIC_ROOT}/${assertDeviceId(deviceId)}/${kind}`;
}

/** All topics of one device, as the relay and the kiosk need them. */
export function deviceTopics(deviceId: string): Record<'attestations' | 'verdicts' | 'challengeRequest' | 'challengeResponse' | 'status', string> {
  return {
    attestations: topicFor('attestations', deviceId),
    verdicts: topicFor('verdicts', deviceId),
    challengeRequest: topicFor('challenges/request', deviceId),
    challengeResponse: topicFor('challenges/response', deviceId),
    status: topicFor('status', deviceId),
  };
}

/** `biokiosk/v1/+/{kind}`: the same kind of topic for every device. */
export function allDevicesFilter(kind: TopicKind): string {
  return `${TOPIC_ROOT}/+/${kind}`;
}

/** `$share/{group}/biokiosk/v1/+/{kind}`: each message goes to one member of the verifier group. */
export function sharedSubscription(group: string, kind: TopicKind = 'attestations'): string {
  if (!isValidDeviceId(group)) throw new Rejection('malformed', `Share group ${JSON.stringify(group.slice(0, 80))} must be 1-64 characters of A-Z a-z 0-9 . _ -.`);
  return `$share/${group}/${allDevicesFilter(kind)}`;
}

export interface ParsedTopic {
  deviceId: string;
  kind: TopicKind;
}

/** Splits a concrete topic into device id and kind; anything outside the scheme is a `malformed` rejection. */
export function parseTopic(topic: string): ParsedTopic {
  const prefix = `${TOPIC_ROOT}/`;
  if (topic.length > 256 || !topic.startsWith(prefix)) throw new Rejection('malformed', `Topic ${JSON.stringify(topic.slice(0, 80))} is not under ${TOPIC_ROOT}/.`);
  const rest = topic.slice(prefix.length);
  const slash = rest.indexOf('/');
  const deviceId = slash < 0 ? rest : rest.slice(0, slash);
  const kind = slash < 0 ? '' : rest.slice(slash + 1);
  if (!isValidDeviceId(deviceId)) throw new Rejection('malformed', `Topic ${JSON.stringify(topic.slice(0, 80))} has no valid device id.`);
  if (!(TOPIC_KINDS as readonly string[]).includes(kind)) throw new Rejection('malformed', `Topic ${JSON.stringify(topic.slice(0, 80))} is not a biokiosk topic kind.`);
  return { deviceId, kind: kind as TopicKind };
}

/** Parses `topic` and checks it is of `kind`; returns the device id. */
export function deviceIdFromTopic(topic: string, kind: TopicKind): string {
  const t = parseTopic(topic);
  if (t.kind !== kind) throw new Rejection('malformed', `Topic ${JSON.stringify(topic.slice(0, 80))} is a ${t.kind} topic, not ${kind}.`);
  return t.deviceId;
}
