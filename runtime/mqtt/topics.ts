// The MQTT topic layout: the ONE place it is defined (docs/mqtt.md describes it for people).
// Publisher (reporter.ts) and subscribers (client.ts, command-client.ts) build and parse topics
// only through this module.
//
//   edgeprompt/v1/<device>/status              retained, QoS 1: {state:'online'} birth, {state:'offline'} last will
//   edgeprompt/v1/<device>/state               retained, QoS 1: model, thresholds, paused cameras...
//   edgeprompt/v1/<device>/<camera>/result     QoS 1: one inference result, via the outbox
//   edgeprompt/v1/<device>/health              QoS 0, every healthIntervalMs
//   edgeprompt/v1/<device>/event               QoS 1: model loaded, camera lost, errors
//   edgeprompt/v1/<device>/cmd/<name>          in, QoS 1: a command request
//   edgeprompt/v1/<device>/cmd/<name>/reply    out, QoS 1: its reply (unless an MQTT v5 responseTopic was given)
//   edgeprompt/v1/<device>/deploy              retained, QoS 1: the device's deployment state (docs/deploy.md)
//   edgeprompt/v1/<device>/deploy/get          out, QoS 1: block requests of a transfer in progress
//   edgeprompt/v1/<device>/deploy/block        in, QoS 1: artifact blocks for this device (binary frames)
//   edgeprompt/v1/<device>/<camera>/frame      QoS 1: a kept frame (binary: header + image), via the spool (docs/data-loop.md)
//   edgeprompt/v1/<device>/label               QoS 1: ground truth from the line for one result, via the spool
//
// A result topic and a command topic both have five levels, so the camera id `cmd` is reserved.

import { TopicError } from './errors.ts';

const TOPIC_ROOT = 'edgeprompt/v1';
const ROOT_LEVELS = TOPIC_ROOT.split('/');

/** Camera ids that would make a result topic look like another topic. */
const RESERVED_CAMERA_IDS = new Set(['cmd']);
const MAX_ID_LENGTH = 64;
// MQTT forbids wildcards in published topic names and '/' separates levels; whitespace and
// control characters are refused too so ids print cleanly in logs and the `watch` table.
const BAD_ID_CHARS = /[+#/\s\u0000-\u001f\u007f]/u;

export type IdKind = 'device' | 'camera' | 'command';

/** Returns the id unchanged, or throws TopicError INVALID_ID naming the field and value. */
export function validateId(kind: IdKind, value: string): string {
  const why = idProblem(kind, value);
  if (why !== null) {
    throw new TopicError('INVALID_ID', `${kind} id ${JSON.stringify(value)} ${why}`);
  }
  return value;
}

/** Why `value` cannot be a `kind` id, or null when it can. Used by the zod schemas too. */
export function idProblem(kind: IdKind, value: string): string | null {
  if (value.length === 0) return 'is empty; use 1-64 characters without + # / or whitespace';
  if (value.length > MAX_ID_LENGTH) return `is longer than ${MAX_ID_LENGTH} characters`;
  const bad = BAD_ID_CHARS.exec(value);
  if (bad) {
    return `contains ${JSON.stringify(bad[0])}; MQTT topic levels cannot hold + # / and ids may not hold whitespace`;
  }
  if (kind === 'camera' && RESERVED_CAMERA_IDS.has(value)) {
    return 'is reserved (it would collide with the command topics); pick another camera id';
  }
  return null;
}

const dev = (device: string) => `${TOPIC_ROOT}/${validateId('device', device)}`;

/** Topic names to publish to. Every builder validates its ids. */
export const topics = {
  status: (device: string) => `${dev(device)}/status`,
  state: (device: string) => `${dev(device)}/state`,
  health: (device: string) => `${dev(device)}/health`,
  event: (device: string) => `${dev(device)}/event`,
  result: (device: string, camera: string) => `${dev(device)}/${validateId('camera', camera)}/result`,
  command: (device: string, name: string) => `${dev(device)}/cmd/${validateId('command', name)}`,
  reply: (device: string, name: string) => `${dev(device)}/cmd/${validateId('command', name)}/reply`,
  deploy: (device: string) => `${dev(device)}/deploy`,
  deployGet: (device: string) => `${dev(device)}/deploy/get`,
  deployBlock: (device: string) => `${dev(device)}/deploy/block`,
  frame: (device: string, camera: string) => `${dev(device)}/${validateId('camera', camera)}/frame`,
  label: (device: string) => `${dev(device)}/label`,
} as const;

const level = (kind: IdKind, id: string | undefined) => (id === undefined ? '+' : validateId(kind, id));

/** Subscription filters. An omitted device or camera becomes the `+` wildcard. */
export const filters = {
  results: (sel: { device?: string; camera?: string } = {}) =>
    `${TOPIC_ROOT}/${level('device', sel.device)}/${level('camera', sel.camera)}/result`,
  status: (device?: string) => `${TOPIC_ROOT}/${level('device', device)}/status`,
  state: (device?: string) => `${TOPIC_ROOT}/${level('device', device)}/state`,
  health: (device?: string) => `${TOPIC_ROOT}/${level('device', device)}/health`,
  event: (device?: string) => `${TOPIC_ROOT}/${level('device', device)}/event`,
  /** What a device subscribes to: its own commands, never the replies (they have one more level). */
  commands: (device: string) => `${dev(device)}/cmd/+`,
  replies: (device?: string) => `${TOPIC_ROOT}/${level('device', device)}/cmd/+/reply`,
  deploy: (device?: string) => `${TOPIC_ROOT}/${level('device', device)}/deploy`,
  deployGet: (device?: string) => `${TOPIC_ROOT}/${level('device', device)}/deploy/get`,
  frames: (sel: { device?: string; camera?: string } = {}) =>
    `${TOPIC_ROOT}/${level('device', sel.device)}/${level('camera', sel.camera)}/frame`,
  labels: (device?: string) => `${TOPIC_ROOT}/${level('device', device)}/label`,
} as const;

export type ParsedTopic =
  | { kind: 'status' | 'state' | 'health' | 'event' | 'deploy' | 'deploy-get' | 'deploy-block' | 'label'; device: string }
  | { kind: 'result' | 'frame'; device: string; camera: string }
  | { kind: 'command' | 'reply'; device: string; name: string };

const DEVICE_LEVEL_KINDS = new Set(['status', 'state', 'health', 'event', 'deploy', 'label'] as const);
type DeviceLevelKind = 'status' | 'state' | 'health' | 'event' | 'deploy' | 'label';
const isDeviceLevelKind = (s: string): s is DeviceLevelKind => DEVICE_LEVEL_KINDS.has(s as DeviceLevelKind);

/**
 * Parses a topic name received from a broker. Returns null for anything outside the layout
 * (another root, another version, an id that could not have been built here).
 */
export function parseTopic(topic: string): ParsedTopic | null {
  const parts = topic.split('/');
  if (parts.length < ROOT_LEVELS.length + 2) return null;
  for (let i = 0; i < ROOT_LEVELS.length; i++) if (parts[i] !== ROOT_LEVELS[i]) return null;
  const rest = parts.slice(ROOT_LEVELS.length);
  const device = rest[0]!;
  if (idProblem('device', device) !== null) return null;
  if (rest.length === 2) {
    const kind = rest[1]!;
    return isDeviceLevelKind(kind) ? { kind, device } : null;
  }
  if (rest.length === 3 && rest[1] === 'deploy' && (rest[2] === 'get' || rest[2] === 'block')) {
    return { kind: rest[2] === 'get' ? 'deploy-get' : 'deploy-block', device };
  }
  if (rest.length === 3 && rest[1] === 'cmd') {
    return idProblem('command', rest[2]!) === null ? { kind: 'command', device, name: rest[2]! } : null;
  }
  if (rest.length === 3 && (rest[2] === 'result' || rest[2] === 'frame')) {
    return idProblem('camera', rest[1]!) === null ? { kind: rest[2], device, camera: rest[1]! } : null;
  }
  if (rest.length === 4 && rest[1] === 'cmd' && rest[3] === 'reply') {
    return idProblem('command', rest[2]!) === null ? { kind: 'reply', device, name: rest[2]! } : null;
  }
  return null;
}

/** MQTT filter matching (`+` one level, `#` the rest), for messages a persistent session still carries. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** True when a topic name can be published to (used for v5 responseTopic, which the requester chooses). */
export function isPublishableTopic(topic: string): boolean {
  return topic.length > 0 && Buffer.byteLength(topic) <= 65535 && !/[+#\u0000]/u.test(topic);
}
