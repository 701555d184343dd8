// A deterministic generated-frame source (tests, benchmarks, demos without a camera). Frame n's
// pixels depend only on (seed, n), so a run is reproducible. Test knobs simulate the faults the
// watchdog must handle: `stallAfter` stops sending while staying up, `crashAfter` ends the run.

import { CameraError, errorInfo } from '../errors.ts';
import { mulberry32 } from '../rng.ts';
import { BaseSource } from './base.ts';
import type { FrameFormat } from './frame.ts';

export type SyntheticPattern = 'solid' | 'bars' | 'noise';

export interface SyntheticOptions {
  camera: string;
  format: FrameFormat;
  seed?: number;
  fps?: number;
  /** Frames per run; default: endless. */
  count?: number;
  pattern?: SyntheticPattern;
  /** Class names: each frame picks one (seeded) and is drawn in that class's colour; frame.label says which. */
  classes?: string[];
  /** Stop emitting after this many frames of a run, without ending it (a hung camera). */
  stallAfter?: number;
  /** End the run as 'crashed' after this many frames (a dying camera). */
  crashAfter?: number;
  /**
   * Render this many distinct frames once and repeat them: a source that costs (almost) no CPU per
   * frame, for measuring the runtime's own cost without a decoder (bench/runtime.ts).
   */
  cycle?: number;
}

/** The colour of class i (seeded, but fixed per class so a model can learn it). */
export function classColour(seed: number, i: number): [number, number, number] {
  const r = mulberry32(seed * 7919 + i * 104729 + 1);
  return [Math.floor(r() * 256), Math.floor(r() * 256), Math.floor(r() * 256)];
}

/** Renders frame `n` (1-based) deterministically; returns the pixels and the label when classes are set. */
export function renderSynthetic(o: Omit<SyntheticOptions, 'camera'>, n: number): { data: Uint8Array; label?: string } {
  const { width: w, height: h, channels: c } = o.format;
  const seed = o.seed ?? 1;
  const rnd = mulberry32((seed ^ Math.imul(n, 0x9e3779b1)) >>> 0);
  const data = new Uint8Array(w * h * c);
  let label: string | undefined;
  let rgb: [number, number, number];
  if (o.classes !== undefined && o.classes.length > 0) {
    const k = Math.floor(rnd() * o.classes.length);
    label = o.classes[k];
    rgb = classColour(seed, k);
  } else rgb = [Math.floor(rnd() * 256), Math.floor(rnd() * 256), Math.floor(rnd() * 256)];
  const pattern = o.pattern ?? 'solid';
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * c;
      if (pattern === 'noise') {
        data[p] = rnd() * 256;
        data[p + 1] = rnd() * 256;
        data[p + 2] = rnd() * 256;
      } else {
        // 'bars': eight vertical bars that move one bar per frame; dark bars keep a quarter intensity.
        const on = pattern === 'solid' || (Math.floor((x * 8) / w) + n) % 2 === 0;
        data[p] = on ? rgb[0] : rgb[0] >> 2;
        data[p + 1] = on ? rgb[1] : rgb[1] >> 2;
        data[p + 2] = on ? rgb[2] : rgb[2] >> 2;
      }
      if (c === 4) data[p + 3] = 255;
    }
  }
  return label === undefined ? { data } : { data, label };
}

export class SyntheticSource extends BaseSource {
  readonly kind = 'synthetic';
  readonly finite: boolean;
  private timer: NodeJS.Timeout | null = null;
  private rendered = 0; // frames rendered over all runs: content continues across restarts
  private readonly cache: { data: Uint8Array; label?: string }[] = [];

  constructor(readonly options: SyntheticOptions) {
    super(options.camera, options.format);
    this.finite = options.count !== undefined;
  }

  async start(): Promise<void> {
    if (this.state !== 'stopped') return;
    this.setState('starting', 'start');
    const interval = 1000 / (this.options.fps ?? 30);
    const t0 = Date.now();
    let inRun = 0; // frames emitted in this run
    let ticks = 0; // ticks in this run, emitting or not (a stalled source keeps its clock)
    const tick = (): void => {
      this.timer = null;
      const o = this.options;
      if (o.crashAfter !== undefined && inRun >= o.crashAfter) {
        const e = new CameraError('E_SOURCE', `synthetic camera '${this.camera}' crashed after ${inRun} frames (crashAfter)`);
        return this.finish({ reason: 'crashed', error: errorInfo(e), stderrTail: [] });
      }
      if (o.count !== undefined && inRun >= o.count) return this.finish({ reason: 'eof', stderrTail: [] });
      const sourceTs = t0 + ticks * interval;
      ticks++;
      if (o.stallAfter === undefined || inRun < o.stallAfter) {
        const n = ++this.rendered;
        const c = o.cycle;
        let frame = c === undefined ? undefined : this.cache[n % c];
        if (frame === undefined) {
          frame = renderSynthetic(o, n);
          if (c !== undefined) this.cache[n % c] = frame;
        }
        const { data, label } = frame;
        inRun++;
        this.emitFrame(data, label === undefined ? { sourceTs } : { sourceTs, label });
      }
      // Schedule against the run's start so timer lateness does not accumulate.
      this.timer = setTimeout(tick, Math.max(0, t0 + ticks * interval - Date.now()));
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.state !== 'stopped') this.finish({ reason: 'stopped', stderrTail: [] });
  }
}
