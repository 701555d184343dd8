// Shared bookkeeping for frame sources: typed events, state changes, monotonic frame ids.

import { EventEmitter } from 'node:events';
import type { CameraState, CameraStateEvent, EndInfo, Frame, FrameFormat, FrameSourceEvents } from './frame.ts';
import { LineTail } from './tail.ts';

export type FrameExtras = Pick<Frame, 'sourceTs' | 'file' | 'label'>;

export abstract class BaseSource extends EventEmitter<FrameSourceEvents> {
  abstract readonly kind: string;
  abstract readonly finite: boolean;
  private current: CameraState = 'stopped';
  private lastId = 0;
  protected readonly tail: LineTail;

  constructor(
    readonly camera: string,
    readonly format: FrameFormat,
    tailLines = 50,
  ) {
    super();
    this.tail = new LineTail(tailLines);
  }

  get state(): CameraState {
    return this.current;
  }

  diagnostics(): string[] {
    return this.tail.snapshot();
  }

  abstract start(): Promise<void>;
  abstract stop(): Promise<void>;

  protected setState(state: CameraState, reason: string, extra: Partial<CameraStateEvent> = {}): void {
    if (state === this.current) return;
    const prev = this.current;
    this.current = state;
    this.emit('state', { type: 'camera_state', camera: this.camera, state, prev, reason, ts: Date.now(), ...extra });
  }

  /** Stamps and emits a frame; the first frame of a run moves 'starting' to 'running'. */
  protected emitFrame(data: Uint8Array, extras: FrameExtras = {}): void {
    const captureTs = Date.now();
    if (this.current === 'starting') this.setState('running', 'first_frame');
    const { width, height, channels } = this.format;
    const frame: Frame = { data, width, height, channels, camera: this.camera, frameId: ++this.lastId, captureTs };
    if (extras.sourceTs !== undefined) frame.sourceTs = extras.sourceTs;
    if (extras.file !== undefined) frame.file = extras.file;
    if (extras.label !== undefined) frame.label = extras.label;
    this.emit('frame', frame);
  }

  /** Ends the run: state 'stopped' (with the end cause), then the `end` event. */
  protected finish(info: EndInfo): void {
    const extra: Partial<CameraStateEvent> = {};
    if (info.error) extra.error = info.error;
    if (info.exitCode !== undefined) extra.exitCode = info.exitCode;
    if (info.signal !== undefined) extra.signal = info.signal;
    if (info.reason === 'crashed') extra.stderrTail = info.stderrTail;
    this.setState('stopped', info.reason, extra);
    this.emit('end', info);
  }
}
