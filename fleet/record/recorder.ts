// `edgeprompt record`: every result, status, state, health message, event and deployment state on the broker into
// PostgreSQL (PGlite or a server).
//
// - A persistent session (fixed client id, clean:false, session expiry on MQTT 5) with QoS 1
//   subscriptions: while the recorder is away the broker keeps what it missed.
// - Results, health, events, kept frames and labels through an MQTT 5 shared subscription ($share/<group>/…), so
//   several recorders with one group split the load; status, state and deploy (retained, one per device)
//   through plain subscriptions, so every recorder, and the dashboard built on one, sees all.
// - PUBACK after the batch is stored (held-acks.ts): killed mid-stream, the recorder loses nothing,
//   and the redelivered copies are no-ops (idempotent on device, seqEpoch, seq).
// - Retention by age and size (retention.ts) on a timer.

import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { z } from 'zod';
import { ConnectionOptions, endClient, parseOptions, toMqttOptions } from '../../runtime/mqtt/connection.ts';
import { filters } from '../../runtime/mqtt/topics.ts';
import { defaultLog, type Log } from '../../runtime/log.ts';
import { Batcher, type BatcherStats, type StoredBatch } from './batcher.ts';
import { classify } from './classify.ts';
import type { Db } from './db.ts';
import { RecorderError } from './errors.ts';
import { HeldAcks } from './held-acks.ts';
import { migrate } from './migrations.ts';
import { applyRetention, type RetentionReport } from './retention.ts';

const GroupName = z.string().min(1).max(64).regex(/^[^/+#\s]+$/, 'must not hold / + # or whitespace');

export const RecorderOptions = z.strictObject({
  mqtt: ConnectionOptions,
  /** Shared-subscription group; null subscribes plainly (brokers without $share, e.g. aedes). */
  group: GroupName.nullable().default('edgeprompt-recorders'),
  /** Results per batch; default 500 on PGlite, 1000 on a server. */
  maxRows: z.number().int().min(1).max(10_000).optional(),
  /** The longest a message waits for its batch. */
  maxDelayMs: z.number().int().min(0).max(10_000).default(20),
  /** MQTT 5 Receive Maximum: unacknowledged messages the broker may send ahead. Default 4 × maxRows. */
  receiveMaximum: z.number().int().min(1).max(65_535).optional(),
  retention: z
    .strictObject({
      maxAgeDays: z.number().positive().nullable().default(30),
      maxBytes: z.number().int().positive().nullable().default(null),
      intervalMs: z.number().int().min(1000).default(10 * 60_000),
    })
    .prefault({}),
});
export type RecorderOptionsInput = z.input<typeof RecorderOptions>;
export type RecorderOptions = z.output<typeof RecorderOptions>;

/** edgeprompt-<role>-<hostname>: stable across restarts, so the broker resumes the session. */
export const defaultClientId = (role: string) => `edgeprompt-${role}-${hostname()}`.slice(0, 128);

export interface RecorderStats extends BatcherStats {
  connected: boolean;
  pendingAcks: number;
  clientId: string;
  group: string | null;
  db: { kind: Db['kind']; where: string };
  retention: (RetentionReport & { at: number }) | null;
}

type Events = { stored: [StoredBatch]; connect: []; offline: []; retention: [RetentionReport]; error: [Error] };

export class Recorder extends EventEmitter<Events> {
  /** Resolves when the broker first granted every subscription. */
  readonly ready: Promise<void>;
  private lastRetention: (RetentionReport & { at: number }) | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private daysTimer: NodeJS.Timeout | null = null;
  private retentionRun: Promise<void> | null = null;
  private closing: Promise<void> | null = null;

  private constructor(
    readonly db: Db,
    private readonly sharedFilters: string[],
    readonly options: RecorderOptions,
    readonly clientId: string,
    private readonly client: MqttClient,
    private readonly acks: HeldAcks,
    private readonly batcher: Batcher,
    private readonly log: Log,
    ready: Promise<void>,
  ) {
    super();
    this.ready = ready;
  }

  static async start(db: Db, input: RecorderOptionsInput, deps: { log?: Log; role?: string } = {}): Promise<Recorder> {
    const o = parseOptions(RecorderOptions, input, 'recorder') as RecorderOptions;
    const log = deps.log ?? defaultLog('edgeprompt.record');
    const applied = await migrate(db);
    if (applied.length > 0) log.info({ db: db.where, versions: applied }, 'recorder: database schema migrated');
    const maxRows = o.maxRows ?? (db.kind === 'pglite' ? 500 : 1000);
    const batcher = new Batcher(db, { maxRows, maxDelayMs: o.maxDelayMs }, log);
    const clientId = o.mqtt.clientId ?? defaultClientId(deps.role ?? 'recorder');
    const mo = toMqttOptions(o.mqtt, { clientId, clean: false });
    // MQTT 5: the in-flight window (see held-acks.ts), and no packet above 16 MiB (a result is about
    // 1 KB, a kept frame an image at the model's size, tens of KB; the broker drops a larger message
    // for this client instead of sending it).
    if (o.mqtt.protocolVersion === 5) mo.properties = { ...mo.properties, receiveMaximum: o.receiveMaximum ?? Math.min(65_535, 4 * maxRows), maximumPacketSize: 16 << 20 };
    const client = mqtt.connect(o.mqtt.url, mo);
    const acks = new HeldAcks(client);

    const shared = (f: string) => (o.group === null ? f : `$share/${o.group}/${f}`);
    const subscriptions = [shared(filters.results()), shared(filters.health()), shared(filters.event()), shared(filters.frames()), shared(filters.labels()), filters.status(), filters.state(), filters.deploy()];
    let resolveReady!: () => void;
    const ready = new Promise<void>((r) => (resolveReady = r));
    const rec = new Recorder(db, o.group === null ? [] : subscriptions.slice(0, 5), o, clientId, client, acks, batcher, log, ready);

    client.on('connect', () => {
      rec.emit('connect');
      // Subscribe on every connect: a resumed session has them already (harmless), a broker that
      // lost the session does not.
      client.subscribe(subscriptions, { qos: 1 }, (err, granted) => {
        if (err) return log.error({ err: err.message }, 'recorder: subscribe failed');
        const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
        if (refused.length > 0) {
          const e = new RecorderError('RECORDER_BAD_OPTIONS', `the broker refused ${refused.join(', ')}${o.group ? ' (no shared subscriptions? run with --no-group)' : ''}`);
          log.error({ refused }, e.message);
          rec.emit('error', e);
          return;
        }
        resolveReady();
      });
    });
    client.on('offline', () => rec.emit('offline'));
    client.on('error', (e) => log.warn({ err: e.message, code: (e as { code?: unknown }).code }, 'recorder: mqtt'));
    client.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) => {
      batcher.add(classify(topic, payload, Date.now()), acks.track(packet));
    });
    // Backpressure for brokers that send without a window (MQTT 3.1.1): stop reading while too
    // much waits for the database.
    const maxBuffered = 4 * maxRows;
    const waiting: (() => void)[] = [];
    client.handleMessage = (_packet, cb) => {
      if (batcher.buffered < maxBuffered) return cb();
      waiting.push(() => cb());
    };
    batcher.on('stored', (b) => {
      while (waiting.length > 0 && batcher.buffered < maxBuffered) waiting.shift()!();
      rec.emit('stored', b);
    });
    // Today's and tomorrow's result partitions exist before the first batch and before midnight:
    // creating a table (and its indexes) on the path of a batch would hold that batch up.
    const ahead = () => batcher.prepareDays([Date.now(), Date.now() + 86_400_000]);
    await ahead();
    rec.daysTimer = setInterval(() => void ahead().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'recorder: making tomorrow\'s partition failed; the first batch of the day will')), 3600_000);
    rec.daysTimer.unref();
    rec.scheduleRetention(60_000);
    return rec;
  }

  get connected(): boolean {
    return this.client.connected;
  }

  stats(): RecorderStats {
    return {
      ...this.batcher.stats,
      connected: this.client.connected,
      pendingAcks: this.acks.pending,
      clientId: this.clientId,
      group: this.options.group,
      db: { kind: this.db.kind, where: this.db.where },
      retention: this.lastRetention,
    };
  }

  /** Runs retention now (also on its timer). */
  async retention(): Promise<RetentionReport> {
    const r = await applyRetention(this.db, this.options.retention);
    if (r.droppedDays.length > 0) this.batcher.forgetDays();
    this.lastRetention = { ...r, at: Date.now() };
    if (r.droppedDays.length > 0 || r.deletedMessages > 0) this.log.info({ ...r }, 'recorder: retention');
    this.emit('retention', r);
    return r;
  }

  private scheduleRetention(ms: number): void {
    const { maxAgeDays, maxBytes, intervalMs } = this.options.retention;
    if (this.closing || (maxAgeDays === null && maxBytes === null)) return;
    this.retentionTimer = setTimeout(() => {
      this.retentionRun = this.retention()
        .then(() => undefined)
        .catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'recorder: retention failed; trying again later'))
        .finally(() => {
          this.retentionRun = null;
          this.scheduleRetention(intervalMs);
        });
    }, ms);
    this.retentionTimer.unref();
  }

  /**
   * Takes this recorder out of its group for good: unsubscribes, stores what the broker still
   * sends it (its backlog; done once nothing came for `quietMs`), and ends its session on the
   * broker. Needed because mosquitto keeps handing an offline member of a shared subscription
   * its share of the messages until its session expires: a recorder stopped for good would hold
   * them. (A plain close() keeps the session, so a restart resumes it.)
   */
  async leave(quietMs = 2000): Promise<void> {
    await this.ready;
    if (this.sharedFilters.length > 0) await this.client.unsubscribeAsync(this.sharedFilters);
    let last = -1;
    for (;;) {
      const s = this.stats();
      if (s.received === last && s.buffered === 0 && s.pendingAcks === 0) break;
      last = s.received;
      await new Promise((r) => setTimeout(r, quietMs));
    }
    if (this.retentionTimer) clearTimeout(this.retentionTimer);
    if (this.daysTimer) clearInterval(this.daysTimer);
    this.closing ??= (async () => {
      await this.batcher.close();
      await this.retentionRun;
      if (this.options.mqtt.protocolVersion === 5) {
        await this.client.endAsync(false, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
      } else {
        await endClient(this.client, 2000);
        const o = toMqttOptions(this.options.mqtt, { clientId: this.clientId, clean: true }); // 3.1.1: a clean connect drops the session
        o.reconnectPeriod = 0;
        await (await mqtt.connectAsync(this.options.mqtt.url, o)).endAsync();
      }
    })();
    await this.closing;
  }

  /** Stores what was received (up to timeoutMs), then disconnects; the session stays on the broker. */
  close(timeoutMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      if (this.retentionTimer) clearTimeout(this.retentionTimer);
      if (this.daysTimer) clearInterval(this.daysTimer);
      await this.batcher.close(timeoutMs);
      await this.retentionRun;
      await endClient(this.client, 2000);
    })();
    return this.closing;
  }
}
