// The pipeline's public types: what goes in (cameras, a classifier, sinks) and what comes out
// (results, failures, per-camera stats, events).

import type { CameraStateEvent, Frame, FrameSource } from '../../devices/cameras/frame.ts';
import type { Manifest } from '../artifact/manifest.ts';
import type { PlcHandshake } from '../../devices/serial/plc.ts';
import type { Trigger, TriggerHit } from '../../devices/triggers/trigger.ts';
import type { Log } from '../log.ts';
import type { ResultInput } from '../schema/payloads.ts';
import type { Classifier } from '../session/host.ts';
import type { Prediction } from '../session/task.ts';
import type { ThresholdState } from './thresholds.ts';

export interface CameraInput {
  id: string;
  source: FrameSource;
  trigger: Trigger;
  /** The PLC handshake behind a serial trigger (its decisions go back through a PlcSink). */
  plc?: PlcHandshake;
}

export interface PipelineResult {
  /** The MQTT result without the fields the reporter adds (v, device, seq, seqEpoch, publishTs). */
  input: ResultInput;
  frame: Frame;
  hit: TriggerHit;
  prediction: Prediction;
  batchSize: number;
  /** The manifest it was decided with (the prompt pack's on a shared backbone). */
  manifest: Manifest;
  /** The camera's minConfidence in force when it was decided. */
  threshold: number;
}

export interface PipelineFailure {
  camera: string;
  frame: Frame;
  hit: TriggerHit;
  error: Error & { code?: string };
}

/** Where results go (MQTT reporter, PLC, tests). A returned promise is tracked, not awaited per result. */
export interface Sink {
  readonly name: string;
  result(r: PipelineResult): void | Promise<unknown>;
  failure?(f: PipelineFailure): void | Promise<unknown>;
}

export interface CameraStats {
  state: FrameSource['state'];
  framesIn: number;
  triggered: number;
  processed: number;
  dropped: number;
  /** Frames that arrived while the camera was paused. */
  ignored: number;
  failures: number;
  fpsIn: number;
  fpsProcessed: number;
}

export interface PipelineOptions {
  cameras: readonly CameraInput[];
  classifier: Classifier;
  sinks?: readonly Sink[];
  thresholds?: ThresholdState;
  /** Most frames in one run; default the session's maxBatch. */
  maxBatch?: number;
  topK?: number;
  log?: Log;
}

export type PipelineEvents = {
  result: [r: PipelineResult];
  failure: [f: PipelineFailure];
  camera: [e: CameraStateEvent];
  /** Every camera is finite and has ended, and everything waiting was processed. */
  ended: [];
};
