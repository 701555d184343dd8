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
import { ResultSender, type RefusalReason } from './result-sender.ts';
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
  /** PUBACK callback of each result handed to mqtt.js, to find it in mqtt.js's store when refused. */
  private readonly resultCbs = new Map<number, (err?: Error) => void>();
  private refusalsUnreported = 0;
  private lastRefusalEvent = -Infinity;
  private dropsUnreported = 0;
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
      (topic, payload, cb, seq) => {
        const done = (err?: Error) => {
          this.resultCbs.delete(seq);
          cb(err);
        };
        this.resultCbs.set(seq, done);
        this.client.publish(topic, payload, { qos: 1 }, done);
      },
      opts.maxInflight,
      this.log,
      (id) => this.emit('acked', id),
      (id, reason, message, topic) => this.onRefused(id, reason, message, topic),
      opts.protocolVersion,
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
    this.client.on('connect', (connack) => {
      // MQTT v5: a broker with a packet size limit says so; a result over it would make the broker
      // drop the connection, and mqtt.js would send it again on every reconnect.
      this.sender.maxPacketBytes = connack.properties?.maximumPacketSize ?? Infinity;
      this.onConnect(connack.sessionPresent);
    });
    this.client.on('close', () => this.onClose());
    this.client.on('disconnect', (packet) => {
      // MQTT v5 DISCONNECT 0x95 (packet too large): the broker read up to the oldest result without
      // a PUBACK (PUBACKs come in order) and found it too big. Sent again it ends the same way.
      if (packet.reasonCode === 0x95) this.refuseOldest(0x95, 'the broker disconnected on it: packet too large');
    });
    this.client.on('error', (err) => {
      if (/^Invalid (puback|pubrec) reason code/.test(err.message)) {
        // A PUBACK whose reason code MQTT 5 does not allow there (mosquitto 2.0 answers a PUBLISH
        // over message_size_limit with 0x95): mqtt-packet refuses it and drops the rest of what it
        // had read, so neither that callback nor later PUBACKs in the same read ever fire. The
        // PUBACK belongs to the oldest result in flight; once mqtt.js has handled the packets it
        // parsed before the bad one, that result is refused, and the connection is restarted so
        // the others are sent again.
        setImmediate(() => {
          this.refuseOldest('INVALID_PUBACK', `the broker's PUBACK was not valid MQTT 5 (${err.message}); a broker limit such as message_size_limit refused it`);
          this.client.stream?.destroy();
        });
        return;
      }
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

  /**
   * Connected as the reporter sees it: the session is up and its 'connect' has run. Bug (faults
   * test under load): mqtt.js sets `client.connected` at CONNACK but emits 'connect' only after it
   * has resent everything that was in flight, which took seconds at load 25; a caller that saw
   * `connected` then could cut the link before the reporter knew it was connected, and that
   * disconnect was never reported.
   */
  get connected() {
    return this.wasConnected && this.client.connected;
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

  /** The oldest result in flight was refused: it leaves the outbox, and mqtt.js must not send it again. */
  private refuseOldest(reason: RefusalReason, message: string) {
    const seq = this.sender.oldestInflight();
    if (seq === undefined) return;
    const cb = this.resultCbs.get(seq);
    this.sender.refuse(seq, reason, message);
    if (cb === undefined) return;
    for (const [mid, o] of Object.entries(this.client.outgoing)) {
      if (o.cb === cb) this.client.removeOutgoingMessage(Number(mid));
    }
  }

  /**
   * A refused result: the first of each 10 s is logged as an error and published as an `error`
   * event RESULT_REFUSED; the rest are counted into the next (a device refused every result at
   * 30 fps must not write 30 error lines a second).
   */
  private onRefused(seq: number, reason: RefusalReason, message: string, topic: string) {
    this.refusalsUnreported++;
    if (Date.now() - this.lastRefusalEvent < 10_000) return;
    this.lastRefusalEvent = Date.now();
    const n = this.refusalsUnreported;
    this.refusalsUnreported = 0;
    const code = typeof reason === 'number' ? `reason code 0x${reason.toString(16)}` : reason;
    // 0x87: the usual cause is an ACL that gives this client another topic root (docs/mqtt.md "Broker access control").
    const hint = reason === 0x87 ? `; the broker does not let this client publish on ${topic}: check that device id ${this.device} matches the broker username/ACL it logs in with` : '';
    this.log.error({ seq, reasonCode: reason, topic, refusedSinceLastReport: n, err: message }, `mqtt: broker refused a result${hint}`);
    this.publishEvent({
      type: 'error',
      code: 'RESULT_REFUSED',
      message: `${n === 1 ? 'a result was' : `${n} results were`} refused by the broker and left the outbox (seq ${seq} on ${topic}, ${code}: ${message}${hint})`.slice(0, 2000),
    });
  }

  /**
   * Stores a result in the outbox (resolves once durable, with its seq and the result as published) and sends it when connected.
   * Throws PayloadError for an invalid result (nothing stored), OutboxError when the store fails.
   */
  async publishResult(input: ResultInput): Promise<{ seq: number; result: ResultPayload }> {
    if (this.closing) throw new ReporterError('REPORTER_CLOSED', 'publishResult after close()');
    const topic = topics.result(this.device, input.camera);
    const seq = this.outbox.nextId;
    const result: ResultPayload = { ...input, v: PAYLOAD_VERSION, device: this.device, seq, seqEpoch: this.outbox.epoch, publishTs: Date.now() };
    const payload = encodePayload(ResultPayload, topic, result);
    const stored = this.outbox.put({ topic, payload }); // takes nextId synchronously
    const entry = await stored;
    if (entry.id !== seq) {
      throw new ReporterError('OUTBOX_SHARED', `outbox id ${entry.id} != seq ${seq}: give the reporter its own outbox`);
    }
    this.warnIfDropping();
    this.sender.pump();
    return { seq, result };
  }

  /** The sequence epoch of the results (the outbox's). */
  get seqEpoch(): string {
    return this.outbox.epoch;
  }

  /**
   * QoS 1 on this session with the PUBACK (or the connection's end before it) reported to `cb`:
   * for the keep spool's sender (runtime/keep/uploader.ts); results have their own.
   */
  publishQos1(topic: string, payload: Buffer, cb: (err?: Error) => void): void {
    this.client.publish(topic, payload, { qos: 1 }, (err) => cb(err));
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
    const commands = filters.commands(this.device);
    c.subscribe(commands, { qos: 1 }, (err, granted) => {
      // A refusal is an error on MQTT v5 (SUBACK 0x87...) and granted qos 0x80 on 3.1.1.
      if (err || granted?.some((g) => g.qos >= 0x80)) {
        const why = err?.message ?? 'refused by the broker';
        this.log.error({ err: why, filter: commands }, `mqtt: command subscription failed: this device gets no commands; check that device id ${this.device} matches the broker username/ACL it logs in with`);
        this.publishEvent({ type: 'error', code: 'COMMANDS_REFUSED', message: `the broker refused the subscription to ${commands} (${why}); this device gets no commands` });
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
      const { inflight: _i, ...mqttCounters } = this.counters();
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

  /**
   * At most one warning and one `error` event OUTBOX_DROPPED per 10 s while the bound is dropping
   * results (the event waits for the next connect like any other; health carries the total).
   */
  private warnIfDropping() {
    const dropped = this.outbox.dropped;
    if (dropped === this.droppedSeen) return;
    this.dropsUnreported += dropped - this.droppedSeen;
    this.droppedSeen = dropped;
    if (Date.now() - this.lastDropWarn < 10_000) return;
    this.lastDropWarn = Date.now();
    const n = this.dropsUnreported;
    this.dropsUnreported = 0;
    this.log.warn({ dropped, outboxDepth: this.outbox.size }, 'mqtt: outbox full; oldest results dropped');
    this.publishEvent({
      type: 'error',
      code: 'OUTBOX_DROPPED',
      message: `the outbox is full: ${n} oldest result(s) dropped (${dropped} since seq epoch ${this.outbox.epoch} began, ${this.outbox.size} held); raise outbox.maxEntries / maxBytes or restore the broker link`,
    });
  }
}
