// Serves the blocks of a rollout's file to the devices that ask for them (`<device>/deploy/get` →
// `<device>/deploy/block`, QoS 1). Requests for another rollout or file, or from a device that
// is not a target, are ignored. `maxKiBps` paces all devices together (a token bucket), so a
// rollout does not flood a plant network; a device's repeated request for a block still queued
// is not queued twice.

import type { MqttClient } from 'mqtt';
import { decodePayload } from '../../runtime/schema/codec.ts';
import { BlockRequestPayload, encodeBlockFrame } from '../../runtime/schema/deploy.ts';
import { filters, parseTopic, topics } from '../../runtime/mqtt/topics.ts';

export interface BlockServerOptions {
  rollout: string;
  sha256: string;
  bytes: Uint8Array;
  blockBytes: number;
  targets: ReadonlySet<string>;
  /** 0 = unlimited. */
  maxKiBps: number;
}

export class BlockServer {
  /** Blocks sent, per device. */
  readonly served = new Map<string, number>();
  private readonly queue: { device: string; index: number }[] = [];
  private readonly queued = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private tokens = 0;
  private last = Date.now();
  private closed = false;
  private readonly onMessage = (topic: string, payload: Buffer) => this.onRequest(topic, payload);
  /** After a reconnect (a broker restart): subscribe again; devices ask again for what is outstanding. */
  private readonly onConnect = () => void this.client.subscribeAsync(filters.deployGet(), { qos: 1 }).catch(() => {});

  constructor(
    private readonly client: MqttClient,
    private readonly o: BlockServerOptions,
  ) {}

  async start(): Promise<void> {
    this.client.on('message', this.onMessage);
    this.client.on('connect', this.onConnect);
    await this.client.subscribeAsync(filters.deployGet(), { qos: 1 });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.client.off('message', this.onMessage);
    this.client.off('connect', this.onConnect);
    await this.client.unsubscribeAsync(filters.deployGet()).catch(() => {});
  }

  private onRequest(topic: string, payload: Buffer): void {
    const t = parseTopic(topic);
    if (t?.kind !== 'deploy-get' || !this.o.targets.has(t.device)) return;
    const r = decodePayload(BlockRequestPayload, topic, payload);
    if (!r.ok || r.value.rollout !== this.o.rollout || r.value.sha256 !== this.o.sha256 || r.value.device !== t.device) return;
    const n = Math.ceil(this.o.bytes.length / this.o.blockBytes);
    for (const index of r.value.blocks) {
      const key = `${t.device}/${index}`;
      if (index >= n || this.queued.has(key)) continue;
      this.queued.add(key);
      this.queue.push({ device: t.device, index });
    }
    this.pump();
  }

  private pump(): void {
    if (this.timer || this.closed) return;
    const rate = this.o.maxKiBps * 1024;
    while (this.queue.length > 0) {
      const { device, index } = this.queue[0]!;
      const data = this.o.bytes.subarray(index * this.o.blockBytes, (index + 1) * this.o.blockBytes);
      if (rate > 0) {
        const now = Date.now();
        this.tokens = Math.min(rate, this.tokens + ((now - this.last) / 1000) * rate); // at most 1 s of burst
        this.last = now;
        if (this.tokens < data.length) {
          this.timer = setTimeout(() => ((this.timer = null), this.pump()), Math.ceil(((data.length - this.tokens) / rate) * 1000));
          return;
        }
        this.tokens -= data.length;
      }
      this.queue.shift();
      this.queued.delete(`${device}/${index}`);
      this.client.publish(topics.deployBlock(device), encodeBlockFrame({ rollout: this.o.rollout, index, data }), { qos: 1 });
      this.served.set(device, (this.served.get(device) ?? 0) + 1);
    }
  }
}
