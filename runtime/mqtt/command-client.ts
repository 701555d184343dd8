// Sends a command to a device and waits for its reply (for `edgeprompt` CLI commands, dashboards
// and tests). Correlates by the request `id`, which every device echoes; on MQTT v5 it also sets
// responseTopic and correlationData, which the device honours.

import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import type { z } from 'zod';
import { decodePayload } from '../schema/codec.ts';
import { ReplyPayload, type CommandName, type CommandRequest } from '../schema/payloads.ts';
import { ConnectionOptions, endClient, parseOptions, toMqttOptions } from './connection.ts';
import { topics } from './topics.ts';

export class CommandTimeoutError extends Error {
  override readonly name = 'CommandTimeoutError';
  readonly code = 'COMMAND_TIMEOUT' as const;
}

export interface CommandClient {
  /** Resolves with the device's reply, ok or not; rejects only with CommandTimeoutError. */
  send<N extends CommandName>(
    device: string,
    name: N,
    args?: Omit<CommandRequest<N>, 'id'>,
    opts?: { timeoutMs?: number },
  ): Promise<ReplyPayload>;
  close(): Promise<void>;
}

export async function connectCommandClient(options: z.input<typeof ConnectionOptions>): Promise<CommandClient> {
  const opts = parseOptions(ConnectionOptions, options, 'command client');
  const client: MqttClient = mqtt.connect(
    opts.url,
    toMqttOptions(opts, { clientId: opts.clientId ?? `edgeprompt-cmd-${randomUUID().slice(0, 8)}`, clean: true }),
  );
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  const waiting = new Map<string, (r: ReplyPayload) => void>();
  const subscribed = new Set<string>();
  // The connection options leave resubscribing to us: after a reconnect (a broker restart) the
  // reply topics are subscribed again, or every later reply would be lost.
  client.on('connect', () => {
    if (subscribed.size > 0) void client.subscribeAsync([...subscribed], { qos: 1 }).catch(() => {});
  });
  client.on('message', (topic, payload, packet) => {
    const decoded = decodePayload(ReplyPayload, topic, payload);
    if (!decoded.ok) return;
    const cd = packet.properties?.correlationData;
    const key = decoded.value.id ?? (cd ? cd.toString() : null);
    if (key === null) return;
    const w = waiting.get(key);
    if (w) {
      waiting.delete(key);
      w(decoded.value);
    }
  });

  return {
    async send(device, name, args, sendOpts) {
      const replyTopic = topics.reply(device, name);
      if (!subscribed.has(replyTopic)) {
        await client.subscribeAsync(replyTopic, { qos: 1 });
        subscribed.add(replyTopic);
      }
      const id = randomUUID();
      const timeoutMs = sendOpts?.timeoutMs ?? 5000;
      const reply = new Promise<ReplyPayload>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new CommandTimeoutError(`no reply to ${name} from ${device} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(id, (r) => (clearTimeout(timer), resolve(r)));
      });
      const body = Buffer.from(JSON.stringify({ ...args, id }));
      const properties = opts.protocolVersion === 5 ? { responseTopic: replyTopic, correlationData: Buffer.from(id) } : undefined;
      client.publish(topics.command(device, name), body, { qos: 1, ...(properties && { properties }) });
      return reply;
    },
    close: () => endClient(client, 2000),
  };
}
