// The reporter's options (one zod schema, validated in startReporter) and its public types.

import { z } from 'zod';
import {
  DeviceId,
  type HealthInput,
  type MqttCounters,
  type ReplyPayload,
  type StateInput,
} from '../schema/payloads.ts';
import type { CommandHandlers } from './commands.ts';
import { ConnectionOptions } from './connection.ts';
import type { Log } from '../log.ts';
import type { Outbox } from './outbox.ts';

export const ReporterOptions = ConnectionOptions.extend({
  device: DeviceId,
  /** Health every this many ms while connected; 0 turns it off. */
  healthIntervalMs: z.number().int().min(0).default(10_000),
  /** Results handed to the connection and not yet acknowledged, at most. */
  maxInflight: z.number().int().min(1).max(65535).default(32),
  /** How long close() waits for the `offline` PUBACK and in-flight results before cutting the socket. */
  closeTimeoutMs: z.number().int().min(1).default(3000),
  /** Events raised while disconnected, kept (newest) until the next connect. */
  maxQueuedEvents: z.number().int().min(0).default(100),
});
export type ReporterOptionsInput = z.input<typeof ReporterOptions>;
export type ReporterOptions = z.output<typeof ReporterOptions>;

export interface ReporterDeps {
  /** Where results wait; a file outbox for anything but tests. The caller opens and closes it. */
  outbox: Outbox;
  /** The initial retained state. */
  state: StateInput;
  handlers?: CommandHandlers;
  /** Called every healthIntervalMs; the reporter adds its own counters. */
  health?: () => HealthInput | Promise<HealthInput>;
  log?: Log;
}

export interface ReporterCounters extends MqttCounters {
  inflight: number;
  rejected: number;
}

export type ReporterEvents = {
  connect: [{ sessionPresent: boolean; reconnect: boolean }];
  disconnect: [];
  acked: [seq: number];
  command: [reply: ReplyPayload];
};

