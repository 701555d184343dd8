// Builds the health payload the reporter publishes every health.intervalMs: fps in/processed,
// dropped frames and camera state per camera (from the pipeline and the watchdogs), inference
// latency p50/p99, RSS, CPU temperature, uptime, model and EP. The reporter adds its own MQTT
// counters (outbox depth, published, acked, reconnects).

import type { CameraState } from '../../devices/cameras/frame.ts';
import type { HealthInput } from '../schema/payloads.ts';
import type { Pipeline } from '../pipeline/pipeline.ts';
import type { Classifier } from '../session/host.ts';
import { cpuTemperature, rssBytes } from './system.ts';

type PayloadCameraState = HealthInput['cameras'][string]['state'];

/** The watchdog's five states in the payload's four: stalled and restarting are both "lost". */
export function cameraHealthState(s: CameraState): PayloadCameraState {
  switch (s) {
    case 'starting':
    case 'running':
    case 'stopped':
      return s;
    case 'stalled':
    case 'restarting':
      return 'lost';
  }
}

export interface HealthSources {
  pipeline: Pipeline;
  classifier: Classifier;
  startedAt?: number;
  thermalRoot?: string;
}

export function collectHealth(s: HealthSources): HealthInput {
  const session = s.classifier.current;
  const p50 = s.pipeline.inferMs.quantile(0.5);
  const p99 = s.pipeline.inferMs.quantile(0.99);
  const stats = s.pipeline.stats();
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    uptimeS: round((Date.now() - (s.startedAt ?? Date.now() - process.uptime() * 1000)) / 1000),
    rssBytes: rssBytes(),
    cpuTempC: cpuTemperature(s.thermalRoot),
    model: session?.ref ?? null,
    ep: session?.ep ?? null,
    inferMs: p50 === null || p99 === null ? null : { p50: round(p50), p99: round(p99) },
    cameras: Object.fromEntries(
      Object.entries(stats).map(([id, c]) => [id, { state: cameraHealthState(c.state), fpsIn: round(c.fpsIn), fpsProcessed: round(c.fpsProcessed), droppedFrames: c.dropped }]),
    ),
  };
}
