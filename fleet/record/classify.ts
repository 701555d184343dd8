// One received MQTT message → a row to store, or a malformed entry. Pure (no I/O), so the rules
// are tested without a broker. The topic and the payload are parsed with the runtime's own
// contracts (runtime/mqtt/topics.ts, runtime/schema/payloads.ts): a payload that fails its
// schema, or names another device or camera than its topic, is malformed, counted, and never
// stored as data.

import { createHash } from 'node:crypto';
import { decodePayload } from '../../runtime/schema/codec.ts';
import { DeployStatePayload } from '../../runtime/schema/deploy.ts';
import { EventPayload, HealthPayload, ResultPayload, StatePayload, StatusPayload } from '../../runtime/schema/payloads.ts';
import { parseTopic } from '../../runtime/mqtt/topics.ts';
import { decodeFrameMessage, LabelPayload } from '../../runtime/schema/keep.ts';
import type { FrameRow, LabelRow } from './loop-store.ts';
import type { MessageKind, MessageRow, ResultRow } from './store.ts';

export interface Malformed {
  device: string;
  kind: string;
  code: 'BAD_TOPIC' | 'BAD_JSON' | 'BAD_FRAME' | 'INVALID_PAYLOAD' | 'WRONG_DEVICE' | 'UNSTORABLE';
  topic: string;
  message: string;
}

export type Classified =
  | { kind: 'result'; row: ResultRow; value: ResultPayload }
  | { kind: 'frame'; row: FrameRow }
  | { kind: 'label'; row: LabelRow }
  | { kind: 'message'; row: MessageRow; value: MessagePayload }
  | { kind: 'malformed'; malformed: Malformed }
  /** A topic we do not store (a command or reply that matched a wildcard). */
  | { kind: 'ignored' };

export type MessagePayload = StatusPayload | StatePayload | HealthPayload | EventPayload | DeployStatePayload;

const SCHEMAS = { status: StatusPayload, state: StatePayload, health: HealthPayload, event: EventPayload, deploy: DeployStatePayload } as const;

export function classify(topic: string, payload: Buffer, receivedTs: number): Classified {
  const where = parseTopic(topic);
  if (!where) {
    return { kind: 'malformed', malformed: { device: '', kind: 'topic', code: 'BAD_TOPIC', topic, message: `topic ${JSON.stringify(topic.slice(0, 300))} is outside the edgeprompt/v1 layout (docs/mqtt.md)` } };
  }
  // Commands and replies, and a deployment's block traffic, are not the line's record.
  if (where.kind === 'command' || where.kind === 'reply' || where.kind === 'deploy-get' || where.kind === 'deploy-block') return { kind: 'ignored' };
  const text = payload.toString('utf8');
  if (where.kind === 'result') {
    const d = decodePayload(ResultPayload, topic, text);
    if (!d.ok) return bad(where.device, 'result', d.error.code, topic, d.error.message);
    const r = d.value;
    if (r.device !== where.device || r.camera !== where.camera) {
      return bad(where.device, 'result', 'WRONG_DEVICE', topic, `result on ${topic} says device ${JSON.stringify(r.device)} camera ${JSON.stringify(r.camera)}`);
    }
    return { kind: 'result', value: r, row: { device: r.device, captureTs: r.captureTs, seqEpoch: r.seqEpoch, seq: r.seq, json: text, receivedTs } };
  }
  if (where.kind === 'frame') {
    const d = decodeFrameMessage(payload);
    if (!d.ok) return bad(where.device, 'frame', d.code, topic, d.message);
    if (d.header.device !== where.device || d.header.camera !== where.camera) {
      return bad(where.device, 'frame', 'WRONG_DEVICE', topic, `frame on ${topic} says device ${JSON.stringify(d.header.device)} camera ${JSON.stringify(d.header.camera)}`);
    }
    return { kind: 'frame', row: { header: d.header, image: d.image, receivedTs } };
  }
  if (where.kind === 'label') {
    const d = decodePayload(LabelPayload, topic, text);
    if (!d.ok) return bad(where.device, 'label', d.error.code, topic, d.error.message);
    if (d.value.device !== where.device) return bad(where.device, 'label', 'WRONG_DEVICE', topic, `label on ${topic} says device ${JSON.stringify(d.value.device)}`);
    return { kind: 'label', row: { label: d.value, receivedTs } };
  }
  const kind: MessageKind = where.kind;
  const d = decodePayload(SCHEMAS[where.kind], topic, text);
  if (!d.ok) return bad(where.device, kind, d.error.code, topic, d.error.message);
  const v = d.value as MessagePayload;
  if (v.device !== where.device) return bad(where.device, kind, 'WRONG_DEVICE', topic, `payload on ${topic} says device ${JSON.stringify(v.device)}`);
  const digest = createHash('sha1').update(payload).digest('hex');
  return { kind: 'message', value: v, row: { device: v.device, kind, ts: v.ts, receivedTs, digest, json: text } };
}

function bad(device: string, kind: string, code: Malformed['code'], topic: string, message: string): Classified {
  return { kind: 'malformed', malformed: { device, kind, code, topic, message } };
}
