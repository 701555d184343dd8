// The subscriber client: typed results, health, status, state and events, parsed with the same
// schemas the publisher uses. A bad message goes to onError and never reaches the handler or throws.
//
// Give a clientId for a persistent session (clean:false, QoS 1, sessionExpiryInterval on v5): the
// broker then queues results while this subscriber is away, and they arrive on reconnect. Without
// one, the session is clean and whatever is published while disconnected is not delivered to it.

import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { z } from 'zod';
import { decodePayload, PayloadError } from '../schema/codec.ts';
import {
  CameraId,
  DeviceId,
  EventPayload,
  HealthPayload,
  ResultPayload,
  StatePayload,
  StatusPayload,
} from '../schema/payloads.ts';
import { ConnectionOptions, endClient, parseOptions, toMqttOptions } from './connection.ts';
import { defaultLog } from '../log.ts';
import { SeqTracker, type SeqVerdict } from './seq-tracker.ts';
import { filters, parseTopic, topicMatches, type ParsedTopic } from './topics.ts';

export const SubscribeOptions = ConnectionOptions.extend({ device: DeviceId.optional(), camera: CameraId.optional() });
export type SubscribeOptionsInput = z.input<typeof SubscribeOptions> & {
  /** Invalid payloads, handler exceptions and connection errors. Default: a warning on stderr. */
  onError?: (err: Error) => void;
};

export class SubscriptionRefusedError extends Error {
  override readonly name = 'SubscriptionRefusedError';
  readonly code = 'SUBSCRIPTION_REFUSED' as const;
}

export interface Subscription {
  /** Resolves once the broker has acknowledged the subscription (first connect). */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

export interface ResultMessage extends SeqVerdict {
  result: ResultPayload;
  topic: string;
}

/** Results for one device/camera, or all (`+`) when omitted, with gap and duplicate detection by seq. */
export function subscribeResults(
  options: SubscribeOptionsInput,
  handler: (msg: ResultMessage) => void | Promise<void>,
): Subscription {
  const tracker = new SeqTracker();
  return subscribe(options, 'results', (o) => filters.results(o), ResultPayload, (result, topic, where) => {
    if (where.kind !== 'result' || where.device !== result.device || where.camera !== result.camera) {
      return new PayloadError(
        'INVALID_PAYLOAD',
        topic,
        `result on ${topic} says device ${JSON.stringify(result.device)} camera ${JSON.stringify(result.camera)}`,
      );
    }
    return handler({ result, topic, ...tracker.see(result.device, result.seqEpoch, result.seq) });
  });
}

type Plain<T> = (payload: T, topic: string) => void | Promise<void>;
const deviceScoped = (kind: 'status' | 'state' | 'health' | 'event') => (o: { device?: string }) =>
  filters[kind](o.device);

/** Retained status of every device (or one): the current value arrives at once, then changes. */
export const subscribeStatus = (options: SubscribeOptionsInput, handler: Plain<StatusPayload>) =>
  subscribe(options, 'status', deviceScoped('status'), StatusPayload, checkDevice(handler));
export const subscribeState = (options: SubscribeOptionsInput, handler: Plain<StatePayload>) =>
  subscribe(options, 'state', deviceScoped('state'), StatePayload, checkDevice(handler));
export const subscribeHealth = (options: SubscribeOptionsInput, handler: Plain<HealthPayload>) =>
  subscribe(options, 'health', deviceScoped('health'), HealthPayload, checkDevice(handler));
export const subscribeEvents = (options: SubscribeOptionsInput, handler: Plain<EventPayload>) =>
  subscribe(options, 'events', deviceScoped('event'), EventPayload, checkDevice(handler));

function checkDevice<T extends { device: string }>(handler: Plain<T>) {
  return (value: T, topic: string, where: ParsedTopic) =>
    where.device === value.device
      ? handler(value, topic)
      : new PayloadError('INVALID_PAYLOAD', topic, `payload on ${topic} says device ${JSON.stringify(value.device)}`);
}

type Deliver<T> = (value: T, topic: string, where: ParsedTopic) => void | Promise<void> | PayloadError;

function subscribe<S extends z.ZodType>(
  input: SubscribeOptionsInput,
  what: string,
  filterOf: (o: z.output<typeof SubscribeOptions>) => string,
  schema: S,
  deliver: Deliver<z.output<S>>,
): Subscription {
  const { onError: givenOnError, ...rest } = input;
  const opts = parseOptions(SubscribeOptions, rest, `subscribe ${what}`);
  const log = givenOnError ? null : defaultLog('edgeprompt.client');
  const onError = givenOnError ?? ((e: Error) => log!.warn({ err: e.message, code: (e as { code?: unknown }).code }, 'mqtt client'));
  const filter = filterOf(opts);
  const persistent = opts.clientId !== undefined; // the broker queues QoS 1 results for us while we are away
  const client: MqttClient = mqtt.connect(
    opts.url,
    toMqttOptions(opts, { clientId: opts.clientId ?? `edgeprompt-sub-${randomUUID().slice(0, 8)}`, clean: !persistent }),
  );
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => (resolveReady = r));
  client.on('connect', () => {
    // Subscribe on every connect: a resumed session already has it (re-subscribing is harmless),
    // but a broker that lost the session, or a clientId last used with another filter, does not.
    client.subscribe(filter, { qos: 1 }, (err, granted) => {
      if (err) return onError(err);
      if (granted?.some((g) => g.qos === 128)) {
        return onError(new SubscriptionRefusedError(`broker refused the subscription to ${filter} (not authorized?)`));
      }
      resolveReady();
    });
  });
  client.on('error', (err) => onError(err));
  client.on('message', (topic: string, payload: Buffer) => {
    // A persistent session may still carry an older subscription of the same clientId.
    if (!topicMatches(filter, topic)) return;
    const where = parseTopic(topic);
    if (!where) return;
    const decoded = decodePayload(schema, topic, payload);
    if (!decoded.ok) return onError(decoded.error);
    try {
      const r = deliver(decoded.value, topic, where);
      if (r instanceof PayloadError) onError(r);
      else if (r instanceof Promise) r.catch((e: unknown) => onError(asError(e)));
    } catch (e) {
      onError(asError(e));
    }
  });
  return { ready, close: () => endClient(client, 2000) };
}

const asError = (e: unknown) => (e instanceof Error ? e : new Error(String(e)));
