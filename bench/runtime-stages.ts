// Part of bench/runtime.ts: the CPU the runtime spends per frame outside inference, by stage, each
// measured alone with the real code (process.cpuUsage: user + system of this process, libuv's
// thread pool included; the broker is mosquitto in its own process, so its work is not counted):
//   pipeline    a camera frame in → a result out: the synthetic source repeating pre-rendered
//               frames (no rendering), free-run trigger, newest-frame slot, batching, result
//               assembly and thresholds, with a stub model that answers at once with a prediction
//               the real model made (so inference costs nothing here)
//   mqtt sink   reporter.publishResult → encoded payload, outbox put (memory, or file with group
//               commit), QoS 1 publish, PUBACK, outbox ack; one result at a time as the pipeline
//               hands them over, 32 in flight
// Their sum is what the runtime adds to each inference; the end-to-end ÷ bare ratio says how much
// of that the machine could not hide.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SyntheticSource } from '../devices/cameras/synthetic.ts';
import { FreeRunTrigger } from '../devices/triggers/free-run.ts';
import { loadTrustedKeys } from '../runtime/artifact/keys.ts';
import type { DeviceProfile } from '../runtime/config/profile.ts';
import { openOutbox, type OutboxConfig } from '../runtime/mqtt/outbox-config.ts';
import { startReporter } from '../runtime/mqtt/reporter.ts';
import { Pipeline, type PipelineResult } from '../runtime/pipeline/pipeline.ts';
import { ModelHost, type Classifier } from '../runtime/session/host.ts';
import { startMosquitto } from '../test/helpers/brokers.ts';

export interface StageCost {
  stage: string;
  /** CPU µs per frame (or per result). */
  us: number;
  frames: number;
}

const cpuUs = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

/** Stage costs on `artifact` (its input size sets the frame size). */
export async function stageCosts(o: { artifact: string; pub: string; profile: DeviceProfile; seconds: number; results: number }): Promise<StageCost[]> {
  const host = new ModelHost({ profile: o.profile, trustedKeys: await loadTrustedKeys([o.pub]) });
  const info = await host.load(o.artifact);
  const { height: h, width: w } = info.session.manifest.input;
  const format = { width: w, height: h, channels: 3 as const };
  const probe = new SyntheticSource({ camera: 'x', format, cycle: 1, count: 1 });
  const frame = await new Promise<Uint8Array>((r) => (probe.once('frame', (f) => r(f.data)), void probe.start()));
  const real = await host.classify([frame], 5, ['cam']);
  // The stub answers with the real model's own prediction, at once.
  const stub: Classifier = {
    get current() {
      return host.current;
    },
    classify: async (frames) => ({ ...real, inferMs: 0, startedAt: Date.now(), predictions: frames.map(() => real.predictions[0]!) }),
  };
  const out: StageCost[] = [];

  // 1. pipeline: 500 frames/s offered (a 2 ms timer), all of them processed (the stub never waits).
  const source = new SyntheticSource({ camera: 'cam', format, fps: 500, cycle: 16 });
  const pipeline = new Pipeline({ cameras: [{ id: 'cam', source, trigger: new FreeRunTrigger() }], classifier: stub, topK: 5 });
  let results = 0;
  pipeline.on('result', (_r: PipelineResult) => void results++);
  await pipeline.start();
  await new Promise((r) => setTimeout(r, 500)); // warm
  const [c0, n0] = [cpuUs(), results];
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  const [c1, n1] = [cpuUs(), results];
  await pipeline.stop();
  out.push({ stage: 'pipeline: frame in → result out (synthetic source, stub model)', us: (c1 - c0) / (n1 - n0), frames: n1 - n0 });

  // 2. the MQTT result sink, memory and file outbox, to mosquitto in its own process.
  const dir = mkdtempSync(join(tmpdir(), 'ep-bench-stages-'));
  const m = await startMosquitto({ dir: join(dir, 'broker') });
  try {
    const input = { ...real.predictions[0]!, camera: 'cam' };
    for (const [name, cfg] of [
      ['mqtt sink: encode, memory outbox, QoS 1 publish, PUBACK, ack', { kind: 'memory' }],
      ['mqtt sink: encode, file outbox (group commit), QoS 1 publish, PUBACK, ack', { kind: 'file', dir: join(dir, 'outbox') }],
    ] as [string, OutboxConfig][]) {
      const outbox = await openOutbox(cfg);
      const rep = startReporter({ url: m.url, device: 'stages', protocolVersion: 5, healthIntervalMs: 0 }, { outbox, state: { model: info.session.ref, ep: 'cpu', cameras: ['cam'], thresholds: { default: 0.5, cameras: {} }, paused: false, pausedCameras: [] }, log: { debug() {}, info() {}, warn() {}, error() {} } });
      await new Promise((r) => rep.once('connect', r));
      const result = {
        camera: 'cam', frameId: '1', triggerId: null, captureTs: Date.now(), model: info.session.ref, label: input.label, score: input.score,
        topK: input.topK.map((k) => ({ label: k.label, score: k.score })), decision: 'OK' as const, latency: { captureToInferMs: 1, inferMs: 10, postMs: 0.1, totalMs: 12 },
      };
      const once = async (n: number) => {
        const pending = new Set<Promise<unknown>>();
        for (let i = 0; i < n; i++) {
          const p = rep.publishResult({ ...result, frameId: String(i) });
          pending.add(p);
          void p.finally(() => pending.delete(p));
          if (pending.size >= 32) await Promise.race(pending);
        }
        await Promise.all(pending);
        await rep.drained();
      };
      await once(200); // warm
      const c2 = cpuUs();
      await once(o.results);
      out.push({ stage: name, us: (cpuUs() - c2) / o.results, frames: o.results });
      await rep.close();
      await outbox.close();
    }
  } finally {
    await m.stop();
    rmSync(dir, { recursive: true, force: true });
    await host.close();
  }
  return out;
}
