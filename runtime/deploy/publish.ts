// The retained `<device>/deploy` state (DeployStatePayload): what runs (from the model host) and
// the deployment in progress or the last one. Published at once on every change of state and on
// every connect, and at most every 500 ms while only figures move (transfer, shadow, watch).

import type { Log } from '../log.ts';
import type { Reporter } from '../mqtt/reporter.ts';
import { topics } from '../mqtt/topics.ts';
import { encodePayload } from '../schema/codec.ts';
import { DeployStatePayload, type DeploymentStatus, type DeployStateInput, type InstalledRef } from '../schema/deploy.ts';
import { PAYLOAD_VERSION } from '../schema/payloads.ts';
import type { ModelHost } from '../session/host.ts';

const EVERY_MS = 500;

export class StatePublisher {
  private last = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly d: {
      device: string;
      reporter: Pick<Reporter, 'publish' | 'bootId'>;
      host: Pick<ModelHost, 'files'>;
      log: Log;
      /** The deployment in progress or the last one. */
      status(): DeploymentStatus | null;
    },
  ) {}

  /** What runs: the model and every pack, with their releases. */
  installed(): DeployStateInput['installed'] {
    const f = this.d.host.files();
    const ref = (kind: 'model' | 'pack', x: { sha256: string; manifest: { name: string; version: string; release: number } }): InstalledRef => ({ kind, name: x.manifest.name, version: x.manifest.version, release: x.manifest.release, sha256: x.sha256 });
    return { model: f.model ? ref('model', f.model) : null, packs: [...f.packs.values()].map((p) => ref('pack', p)) };
  }

  payload(): DeployStateInput {
    return { installed: this.installed(), deployment: this.d.status() };
  }

  now(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.last = Date.now();
    const topic = topics.deploy(this.d.device);
    try {
      const payload = encodePayload(DeployStatePayload, topic, { ...this.payload(), v: PAYLOAD_VERSION, device: this.d.device, ts: Date.now(), bootId: this.d.reporter.bootId });
      this.d.reporter.publish(topic, payload, { qos: 1, retain: true });
    } catch (e) {
      this.d.log.error({ err: (e as Error).message }, 'deploy: state not published');
    }
  }

  soon(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => this.now(), Math.max(0, this.last + EVERY_MS - Date.now()));
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
