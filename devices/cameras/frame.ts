// The frame-source contract every camera adapter (and the watchdog around them) implements.
// Sources push frames as events rather than being pulled: a live camera must not be slowed by a
// slow consumer, so "newest frame wins" is decided downstream by the pipeline.

import type { ErrorInfo } from '../errors.ts';

/** 3 = RGB (rgb24), 4 = RGBA (Jetson nvvidconv pipelines). */
export type Channels = 3 | 4;

export interface FrameFormat {
  width: number;
  height: number;
  channels: Channels;
}

export interface Frame extends FrameFormat {
  /** Row-major interleaved pixels, height × width × channels bytes (NHWC without the N). */
  data: Uint8Array;
  /** Camera id the frame came from. */
  camera: string;
  /** Monotonic per source, across restarts; starts at 1. */
  frameId: number;
  /** ms since epoch, taken when the last byte of the frame arrived. */
  captureTs: number;
  /** Time the source itself attached (stream or synthetic time), ms, when it has one. */
  sourceTs?: number;
  /** Folder replay: the image's path relative to the folder. */
  file?: string;
  /** Folder replay / synthetic: the ground-truth label (the image's parent folder name). */
  label?: string;
}

export type CameraState = 'starting' | 'running' | 'stalled' | 'restarting' | 'stopped';

/** Why a source's run ended. `eof`: a finite source ran out (file without loop, folder). */
export type EndReason = 'eof' | 'crashed' | 'stopped';

export interface EndInfo {
  reason: EndReason;
  error?: ErrorInfo;
  exitCode?: number | null;
  signal?: string | null;
  /** Bytes of an incomplete last frame that were discarded. */
  partialBytes?: number;
  stderrTail: string[];
}

/** Sent on every state change; forwarded as-is to MQTT `event` messages by the runtime. */
export interface CameraStateEvent {
  type: 'camera_state';
  camera: string;
  state: CameraState;
  prev: CameraState;
  /** Machine-readable cause, e.g. 'first_frame', 'crashed', 'stall', 'eof', 'budget_exhausted'. */
  reason: string;
  ts: number;
  /** Watchdog: restarts so far in the current backoff sequence. */
  attempt?: number;
  /** Watchdog: delay before the next start, when one is scheduled. */
  retryInMs?: number;
  exitCode?: number | null;
  signal?: string | null;
  error?: ErrorInfo;
  /** Last stderr lines of a crashed decoder (ffmpeg/gst), for diagnostics. */
  stderrTail?: string[];
}

export interface FrameSourceEvents {
  frame: [frame: Frame];
  state: [event: CameraStateEvent];
  /** The current run is over (the watchdog emits it only when it stops for good). */
  end: [info: EndInfo];
}

export interface FrameSource {
  readonly camera: string;
  readonly kind: string;
  readonly format: FrameFormat;
  readonly state: CameraState;
  /** True when the source ends by itself (video file without loop, folder without loop). */
  readonly finite: boolean;
  /** Begins a run. Never rejects for a missing camera: that ends the run with `end` instead. */
  start(): Promise<void>;
  /** Ends the run and resolves once the subprocess (if any) is gone. Idempotent. */
  stop(): Promise<void>;
  /** Recent diagnostic lines (decoder stderr, skipped files), oldest first. */
  diagnostics(): string[];
  on<K extends keyof FrameSourceEvents>(event: K, listener: (...args: FrameSourceEvents[K]) => void): this;
  off<K extends keyof FrameSourceEvents>(event: K, listener: (...args: FrameSourceEvents[K]) => void): this;
  once<K extends keyof FrameSourceEvents>(event: K, listener: (...args: FrameSourceEvents[K]) => void): this;
}

export function frameBytes(f: FrameFormat): number {
  return f.width * f.height * f.channels;
}
