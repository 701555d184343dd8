// The drift alarm (docs/data-loop.md "Drift"): per camera, the last `window` results (predicted
// class, top-1 score bin) are compared with the reference in the model's manifest every `every`
// results once `minFrames` are in. A camera whose score PSI (or, when configured, class-mix PSI)
// crosses its bound raises a `drift` event (state drifting); once both are back under
// `recoverRatio` × their bounds it raises another (recovered). A new model (or prompt pack) on the
// camera starts a new window: its reference is another. A manifest without a reference (older
// artifacts) is not monitored.

import { z } from 'zod';
import type { Manifest } from '../artifact/manifest.ts';
import { scoreBin, type DriftReference } from '../artifact/reference.ts';
import type { PipelineResult } from '../pipeline/types.ts';
import type { ArtifactRef, DriftFigures, EventInput } from '../schema/payloads.ts';
import { classPsi, scorePsi } from './psi.ts';

const int = z.number().int();

export const DriftConfig = z.strictObject({
  enabled: z.boolean().default(true),
  /** Recent results per camera compared with the reference. */
  window: int.min(20).max(100_000).default(500),
  /** No verdict before this many results are in the window. */
  minFrames: int.min(10).max(100_000).default(200),
  /** Evaluate every this many results. */
  every: int.min(1).max(100_000).default(25),
  /** The score PSI bound (0.25: a large shift by the usual reading). */
  scorePsi: z.number().positive().default(0.25),
  /** Also alarm on the predicted-class mix past this PSI; null: report it only (a line's defect rate moves for reasons of its own). */
  classPsi: z.number().positive().nullable().default(null),
  /** Recovered once every figure is under this share of its bound. */
  recoverRatio: z.number().gt(0).max(1).default(0.6),
});
export type DriftConfig = z.output<typeof DriftConfig>;

interface Cam {
  /** The manifest it is watching for (identity). */
  key: string;
  ref: DriftReference;
  model: ArtifactRef;
  /** Ring of (class, bin) pairs. */
  cls: Int32Array;
  bin: Int32Array;
  n: number;
  next: number;
  sinceEval: number;
  hist: Int32Array[];
  drifting: boolean;
  figures: DriftFigures | null;
}

export class DriftMonitor {
  private readonly cams = new Map<string, Cam | null>();

  constructor(
    private readonly cfg: DriftConfig,
    private readonly publish: (e: EventInput) => void,
  ) {}

  observe(r: PipelineResult): void {
    if (!this.cfg.enabled) return;
    const camera = r.input.camera;
    const m = r.manifest;
    const key = `${r.input.model.sha256}/${m.prompts.sha256}`;
    let c = this.cams.get(camera);
    if (c === undefined || (c !== null && c.key !== key) || (c === null && m.reference !== undefined)) c = this.start(camera, key, m, r.input.prompt ?? r.input.model);
    if (c === null) return;
    const label = m.labels.indexOf(r.input.label);
    if (label < 0) return;
    const bin = scoreBin(c.ref.edges, r.input.score);
    const W = this.cfg.window;
    if (c.n === W) c.hist[c.cls[c.next]!]![c.bin[c.next]!]!--;
    else c.n++;
    c.cls[c.next] = label;
    c.bin[c.next] = bin;
    c.hist[label]![bin]!++;
    c.next = (c.next + 1) % W;
    if (++c.sinceEval >= this.cfg.every && c.n >= this.cfg.minFrames) {
      c.sinceEval = 0;
      this.evaluate(camera, c);
    }
  }

  /** The latest figures of a camera (null before its first evaluation, or without a reference). */
  figures(camera: string): DriftFigures | null {
    return this.cams.get(camera)?.figures ?? null;
  }

  private start(camera: string, key: string, m: Manifest, model: ArtifactRef): Cam | null {
    const ref = m.reference;
    if (!ref) {
      this.cams.set(camera, null);
      return null;
    }
    const B = ref.edges.length - 1;
    const W = this.cfg.window;
    const c: Cam = {
      key,
      ref,
      model,
      cls: new Int32Array(W),
      bin: new Int32Array(W),
      n: 0,
      next: 0,
      sinceEval: 0,
      hist: ref.classes.map(() => new Int32Array(B)),
      drifting: false,
      figures: null,
    };
    this.cams.set(camera, c);
    return c;
  }

  private evaluate(camera: string, c: Cam): void {
    const s = scorePsi(c.ref, c.hist);
    const counts = c.hist.map((h) => h.reduce((a, b) => a + b, 0));
    const k = classPsi(c.ref, counts);
    const { scorePsi: sMax, classPsi: kMax, recoverRatio } = this.cfg;
    const over = s > sMax || (kMax !== null && k > kMax);
    const under = s < sMax * recoverRatio && (kMax === null || k < kMax * recoverRatio);
    const round = (x: number) => Math.round(x * 10_000) / 10_000;
    const was = c.drifting;
    if (!was && over) c.drifting = true;
    else if (was && under) c.drifting = false;
    c.figures = { scorePsi: round(s), classPsi: round(k), frames: c.n, drifting: c.drifting };
    if (c.drifting !== was) {
      this.publish({
        type: 'drift',
        camera,
        state: c.drifting ? 'drifting' : 'recovered',
        model: c.model,
        scorePsi: round(s),
        classPsi: round(k),
        frames: c.n,
        threshold: { scorePsi: sMax, classPsi: kMax },
      });
    }
  }
}
