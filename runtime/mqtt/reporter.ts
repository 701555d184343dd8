// The publisher: one MQTT connection per device that reports results, status, state, health and
// events, and answers commands. What it promises (docs/mqtt.md):
// - persistent session: fixed clientId, clean:false, sessionExpiryInterval (v5), reconnectPeriod > 0;
// - last will: retained status `offline` (reason connection-lost); retained `online` and the
//   current state are published on EVERY connect, before any result (Frigate's _set_initial_topics);
// - results always pass through the outbox (result-sender.ts), so nothing accepted is lost while
//   the broker is away or the process restarts; seq is the outbox id;
// - close() publishes a retained `offline` (reason closed) before ending: a graceful end sends no will.

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { encodePayload } from '../schema/codec.ts';
import {
  EventPayload,
  HealthPayload,
  PAYLOAD_VERSION,
  ResultPayload,
  StatePayload,
  StatusPayload,
  type EventInput,
  type ResultInput,
  type StateInput,
} from '../schema/payloads.ts';
import { dispatchCommand, replyRoute, type CommandContext, type CommandHandlers } from './commands.ts';
import { endClient, parseOptions, toMqttOptions, withTimeout } from './connection.ts';
import { ReporterError } from './errors.ts';
import { defaultLog, type Log } from '../log.ts';
import type { Outbox } from './outbox.ts';
import { ResultSender } from './result-sender.ts';
import {
  ReporterOptions,
  type ReporterCounters,
  type ReporterDeps,
  type ReporterEvents,
  type ReporterOptionsInput,
} from './reporter-options.ts';
import { filters, topicMatches, topics } from './topics.ts';

export { ReporterOptions, type ReporterCounters, type ReporterDeps, type ReporterOptionsInput };

export function startReporter(options: ReporterOptionsInput, deps: ReporterDeps): Reporter {
  return new Reporter(parseOptions(ReporterOptions, options, 'reporter'), deps);
}

export class Reporter extends EventEmitter<ReporterEvents> {
  readonly device: string;
  readonly bootId = randomUUID();
  private readonly startedAt = Date.now();
  private readonly client: MqttClient;
  private readonly sender: ResultSender;
  private readonly outbox: Outbox;
  private readonly log: Log;
  private current: StateInput;
  private connects = 0;
  private wasConnected = false;
  private quietErrors = false;
  private queuedEvents: Buffer[] = [];
  private commandChain: Promise<void> = Promise.resolve();
  private healthTimer: NodeJS.Timeout | null = null;
  private healthBusy = false;
  private closing: Promise<void> | null = null;
  private lastDropWarn = 0;
  private droppedSeen = 0;
  /** Further subscriptions on this session (deployment blocks), made again on every connect. */
  private readonly extra = new Map<string, (topic: string, payload: Buffer) => void>();

  constructor(
    private readonly opts: ReporterOptions,
    private readonly deps: ReporterDeps,
  ) {
    super();
    this.device = opts.device;
    this.outbox = deps.outbox;
    this.log = deps.log ?? defaultLog('edgeprompt.mqtt');
    this.current = { ...deps.state };
    this.droppedSeen = deps.outbox.dropped;
    this.sender = new ResultSender(
      this.outbox,
      (topic, payload, cb) => this.client.publish(topic, payload, { qos: 1 }, (err) => cb(err)),
      opts.maxInflight,
      this.log,
      (id) => this.emit('acked', id),
    );
    const will = this.status('offline', 'connection-lost');
    this.client = mqtt.connect(
      opts.url,
      toMqttOptions(opts, {
        clientId: opts.clientId ?? `edgeprompt-${opts.device}`,
        clean: false,
        will: { topic: topics.status(opts.device), payload: will, qos: 1, retain: true },
      }),
    );
    this.client.on('connect', (connack) => this.onConnect(connack.sessionPresent));
    this.client.on('close', () => this.onClose());
    this.client.on('error', (err) => {
      // Repeated failures during one outage (ECONNREFUSED every reconnectPeriod) log once.
      this.log[this.quietErrors ? 'debug' : 'warn']({ err: err.message, url: opts.url }, 'mqtt: connection error');
      this.quietErrors = true;
    });
    this.client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet));
    if (opts.healthIntervalMs > 0 && deps.health) {
      this.healthTimer = setInterval(() => void this.publishHealth(), opts.healthIntervalMs);
      this.healthTimer.unref();
    }
  }

  get connected() {
    return this.client.connected;
  }
  get state(): Readonly<StateInput> {
    return this.current;
  }

  counters(): ReporterCounters {
    return {
      connected: this.client.connected,
      published: this.sender.published,
      acked: this.sender.acked,
      outboxDepth: this.outbox.size,
      dropped: this.outbox.dropped,
      reconnects: Math.max(0, this.connects - 1),
      inflight: this.sender.inflightCount,
      rejected: this.sender.rejected,
    };
  }

  /**
   * Stores a result in the outbox (resolves once durable, with its seq) and sends it when connected.
   * Throws PayloadError for an invalid result (nothing stored), OutboxError when the store fails.
   */
  async publishResult(input: ResultInput): Promise<{ seq: number }> {
    if (this.closing) throw new ReporterError('REPORTER_CLOSED', 'publishResult after close()');
    const topic = topics.result(this.device, input.camera);
    const seq = this.outbox.nextId;
    const payload = encodePayload(ResultPayload, topic, {
      ...input,
      v: PAYLOAD_VERSION,
      device: this.device,
      seq,
      seqEpoch: this.outbox.epoch,
      publishTs: Date.now(),
    });
    const stored = this.outbox.put({ topic, payload }); // takes nextId synchronously
    const entry = await stored;
    if (entry.id !== seq) {
      throw new ReporterError('OUTBOX_SHARED', `outbox id ${entry.id} != seq ${seq}: give the reporter its own outbox`);
    }
    this.warnIfDropping();
    this.sender.pump();
    return { seq };
  }

  /** QoS 1, not retained. While disconnected the newest maxQueuedEvents wait for the next connect. */
  publishEvent(event: EventInput): void {
    const topic = topics.event(this.device);
    const payload = encodePayload(EventPayload, topic, { ...event, v: PAYLOAD_VERSION, device: this.device, ts: Date.now() });
    if (this.client.connected) {
      this.client.publish(topic, payload, { qos: 1 });
    } else if (this.opts.maxQueuedEvents > 0) {
      this.queuedEvents.push(payload);
      if (this.queuedEvents.length > this.opts.maxQueuedEvents) this.queuedEvents.shift();
    }
  }

  /** Merges into the retained state and publishes it (now if connected, and on every connect). */
  setState(patch: Partial<StateInput>): void {
    const next = { ...this.current, ...patch };
    this.statePayload(next); // validate before adopting it
    this.current = next;
    if (this.client.connected) this.publishState();
  }

  /** Subscribes (QoS 1) on this session, now and after every reconnect; messages on it go to `onMessage`. */
  subscribe(filter: string, onMessage: (topic: string, payload: Buffer) => void): void {
    this.extra.set(filter, onMessage);
    if (this.client.connected) this.client.subscribe(filter, { qos: 1 });
  }

  /**
   * Publishes on this session when connected (returns false otherwise: the caller decides what to
   * resend on the next `connect`). For the deployment's state and block requests; results go
   * through publishResult.
   */
  publish(topic: string, payload: Buffer, opts: { qos: 0 | 1; retain?: boolean }): boolean {
    if (this.closing || !this.client.connected) return false;
    this.client.publish(topic, payload, { qos: opts.qos, retain: opts.retain === true });
    return true;
  }

  /** Resolves when every stored result has been acknowledged. */
  drained(): Promise<void> {
    return this.sender.drained();
  }

  /** Publishes retained `offline` (reason closed), waits for in-flight results, ends the connection. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown() {
    if (this.healthTimer) clearInterval(this.healthTimer);
    const limit = this.opts.closeTimeoutMs;
    await withTimeout(this.commandChain, limit).catch(() => this.log.warn({}, 'mqtt: closing with a command still running'));
    if (this.client.connected) {
      const offline = this.status('offline', 'closed');
      await withTimeout(this.client.publishAsync(topics.status(this.device), offline, { qos: 1, retain: true }), limit).catch(
        (e: Error) => this.log.warn({ err: e.message }, 'mqtt: offline status not acknowledged before close'),
      );
    }
    await endClient(this.client, limit);
    this.sender.setConnected(false);
    await this.sender.settle();
  }

  private onConnect(sessionPresent: boolean) {
    this.connects++;
    this.wasConnected = true;
    this.quietErrors = false;
    const c = this.client;
    c.publish(topics.status(this.device), this.status('online', 'connected'), { qos: 1, retain: true });
    this.publishState();
    // Subscribing again when the session already has it is harmless, and covers a broker that lost it.
    c.subscribe(filters.commands(this.device), { qos: 1 }, (err, granted) => {
      if (err || granted?.some((g) => g.qos === 128)) {
        this.log.error({ err: err?.message ?? 'refused by the broker (ACL?)' }, 'mqtt: command subscription failed');
      }
    });
    for (const f of this.extra.keys()) c.subscribe(f, { qos: 1 });
    for (const p of this.queuedEvents.splice(0)) c.publish(topics.event(this.device), p, { qos: 1 });
    this.log.info({ url: this.opts.url, sessionPresent, connects: this.connects }, 'mqtt: connected');
    this.emit('connect', { sessionPresent, reconnect: this.connects > 1 });
    this.sender.setConnected(true);
  }

  private onClose() {
    this.sender.setConnected(false);
    if (!this.wasConnected) return;
    this.wasConnected = false;
    this.log.warn({ url: this.opts.url }, 'mqtt: disconnected; results wait in the outbox');
    this.emit('disconnect');
  }

  private status(state: 'online' | 'offline', reason: StatusPayload['reason']): Buffer {
    const topic = topics.status(this.device);
    return encodePayload(StatusPayload, topic, {
      v: PAYLOAD_VERSION,
      device: this.device,
      state,
      reason,
      ts: Date.now(),
      bootId: this.bootId,
    });
  }

  private statePayload(s: StateInput): Buffer {
    return encodePayload(StatePayload, topics.state(this.device), {
      ...s,
      v: PAYLOAD_VERSION,
      device: this.device,
      ts: Date.now(),
      bootId: this.bootId,
    });
  }

  private publishState() {
    this.client.publish(topics.state(this.device), this.statePayload(this.current), { qos: 1, retain: true });
  }

  private async publishHealth() {
    if (!this.client.connected || this.healthBusy || !this.deps.health) return;
    this.healthBusy = true;
    try {
      const input = await this.deps.health();
      const { inflight: _i, rejected: _r, ...mqttCounters } = this.counters();
      const topic = topics.health(this.device);
      const payload = encodePayload(HealthPayload, topic, {
        ...input,
        v: PAYLOAD_VERSION,
        device: this.device,
        ts: Date.now(),
        mqtt: mqttCounters,
      });
      this.client.publish(topic, payload, { qos: 0 });
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'mqtt: health not published');
    } finally {
      this.healthBusy = false;
    }
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket) {
    for (const [f, handle] of this.extra) {
      if (!topicMatches(f, topic)) continue;
      try {
        handle(topic, payload);
      } catch (e) {
        this.log.error({ topic, err: (e as Error).message }, 'mqtt: message handler failed');
      }
      return;
    }
    const prefix = filters.commands(this.device).slice(0, -1); // '.../cmd/'
    if (!topic.startsWith(prefix)) return;
    const name = topic.slice(prefix.length) || '(empty)';
    if (name.includes('/')) return; // a reply or deeper topic from an older subscription, not a command
    // One command at a time, in arrival order: a handler never sees the state mid-change.
    this.commandChain = this.commandChain
      .then(() => this.runCommand(topic, name, payload, packet))
      .catch((e: unknown) => this.log.error({ command: name, err: (e as Error).message }, 'mqtt: command reply failed'));
  }

  private async runCommand(topic: string, name: string, payload: Buffer, packet: IPublishPacket) {
    const self = this;
    const ctx: CommandContext = {
      device: this.device,
      get state() {
        return self.current;
      },
      setState: (patch) => this.setState(patch),
    };
    const handlers: CommandHandlers = {
      ...this.deps.handlers,
      ping: () => ({ bootId: this.bootId, uptimeS: (Date.now() - this.startedAt) / 1000 }),
    };
    const reply = await dispatchCommand({ name, payload, retained: packet.retain, handlers, ctx });
    const to = replyRoute(topic, packet);
    this.client.publish(to.topic, Buffer.from(JSON.stringify(reply)), { qos: 1, ...(to.properties && { properties: to.properties }) });
    if (!reply.ok) this.log.warn({ command: name, error: reply.error }, 'mqtt: command refused');
    this.emit('command', reply);
  }

  /** At most one warning per 10 s while the bound is dropping results. */
  private warnIfDropping() {
    const dropped = this.outbox.dropped;
    if (dropped === this.droppedSeen || Date.now() - this.lastDropWarn < 10_000) return;
    this.droppedSeen = dropped;
    this.lastDropWarn = Date.now();
    this.log.warn({ dropped, outboxDepth: this.outbox.size }, 'mqtt: outbox full; oldest results dropped');
  }
}
