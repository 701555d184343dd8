// What the line PC knows about the devices: their retained `<device>/deploy` states and
// `<device>/status` (online or not), kept current from one MQTT subscription. The deploy
// controller's whole memory is this view: it holds no state of its own.

import { EventEmitter } from 'node:events';
import type { MqttClient } from 'mqtt';
import { decodePayload } from '../../runtime/schema/codec.ts';
import { DeployStatePayload } from '../../runtime/schema/deploy.ts';
import { StatusPayload } from '../../runtime/schema/payloads.ts';
import { filters, parseTopic } from '../../runtime/mqtt/topics.ts';

export interface DeviceView {
  device: string;
  online: boolean | null;
  deploy: DeployStatePayload | null;
}

export class FleetView extends EventEmitter<{ change: [device: string] }> {
  readonly devices = new Map<string, DeviceView>();

  constructor(private readonly client: MqttClient) {
    super();
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  /**
   * Subscribes, and again after every reconnect (the connection options leave resubscribing to
   * us); resolves once the broker acknowledged (retained messages follow at once).
   */
  async start(): Promise<void> {
    this.client.on('connect', () => void this.client.subscribeAsync([filters.deploy(), filters.status()], { qos: 1 }).catch(() => {}));
    await this.client.subscribeAsync([filters.deploy(), filters.status()], { qos: 1 });
  }

  get(device: string): DeviceView {
    let v = this.devices.get(device);
    if (!v) this.devices.set(device, (v = { device, online: null, deploy: null }));
    return v;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const t = parseTopic(topic);
    if (!t || (t.kind !== 'deploy' && t.kind !== 'status')) return;
    if (payload.length === 0) return; // a cleared retained message
    if (t.kind === 'deploy') {
      const d = decodePayload(DeployStatePayload, topic, payload);
      if (!d.ok) return;
      this.get(t.device).deploy = d.value;
    } else {
      const d = decodePayload(StatusPayload, topic, payload);
      if (!d.ok) return;
      this.get(t.device).online = d.value.state === 'online';
    }
    this.emit('change', t.device);
  }
}
