// Shadow evaluation (docs/deploy.md "Shadow"): the candidate runs beside the current model on the
// same frames and its results are compared, never published. ShadowTap sits between the pipeline
// and the model host: after each batch the current model decided (and the pipeline got it back,
// so the line does not wait), a ShadowRun may run the candidate on the frames it would serve.
// A batch is skipped when it is not the n-th, when the previous shadow run is still going, or when
// the candidate's share of wall time over the last 5 s is above the CPU budget.

import { QuantileRing } from '../health/quantile.ts';
import { decide, type ThresholdState } from '../pipeline/thresholds.ts';
import type { ShadowFigures, ShadowPolicy } from '../schema/deploy.ts';
import type { Classifier, Prepared } from '../session/host.ts';
import type { BatchResult, ModelTask } from '../session/task.ts';
import type { ArtifactRef } from '../schema/payloads.ts';

type Primary = BatchResult & { session: ModelTask };

/** A frame the candidate decided otherwise (or named another class): the keep rule `shadow` keeps it. */
export interface ShadowDisagreement {
  camera: string;
  /** The frame's pixels, as the pipeline handed them over (identity, not a copy). */
  frame: Uint8Array;
  candidate: { model: ArtifactRef; label: string; decision: 'OK' | 'NG' };
}

/** The pipeline's classifier: the host, with a shadow run watching its batches when one is attached. */
export class ShadowTap implements Classifier {
  private run: ShadowRun | null = null;
  /** Told of every frame the attached run's candidate disagrees on (runtime/keep/keeper.ts). */
  onDisagree: ((d: ShadowDisagreement) => void) | null = null;
  constructor(private readonly inner: Classifier) {}

  get current(): ModelTask | null {
    return this.inner.current;
  }

  async classify(frames: readonly Uint8Array[], topK: number, cameras?: readonly string[]): Promise<Primary> {
    const r = await this.inner.classify(frames, topK, cameras);
    this.run?.observe(frames, cameras, r);
    return r;
  }

  attach(run: ShadowRun): void {
    this.run = run;
    run.report = (d) => this.onDisagree?.(d);
  }
  detach(run: ShadowRun): void {
    if (this.run === run) this.run = null;
  }
}

export type Verdict = { ok: true } | { ok: false; code: 'SHADOW_DISAGREES' | 'SHADOW_TOP1_DISAGREES' | 'SHADOW_NG_RATE' | 'SHADOW_TOO_SLOW' | 'SHADOW_INFERENCE_FAILED'; message: string };

const BUDGET_WINDOW_MS = 5000;
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

export class ShadowRun {
  private batches = 0;
  private busy = false;
  private frames = 0;
  private skipped = 0;
  private errors = 0;
  private lastError = '';
  private sameDecision = 0;
  private sameTop1 = 0;
  private ngCurrent = 0;
  private ngCandidate = 0;
  private readonly inferCurrent = new QuantileRing(2048);
  private readonly inferCandidate = new QuantileRing(2048);
  /** [start, duration] of recent candidate runs, for the CPU budget. */
  private readonly spans: [number, number][] = [];
  private readonly idle: Set<() => void> = new Set();
  /** Set by the tap it is attached to. */
  report: ((d: ShadowDisagreement) => void) | null = null;

  constructor(
    readonly candidate: Prepared,
    private readonly policy: ShadowPolicy,
    private readonly thresholds: ThresholdState,
  ) {}

  /** Called with every batch the current model decided. */
  observe(frames: readonly Uint8Array[], cameras: readonly string[] | undefined, primary: Primary): void {
    this.batches++;
    const pick = frames.map((_, i) => i).filter((i) => this.candidate.covers(cameras?.[i] ?? ''));
    if (pick.length === 0) return;
    if (this.batches % this.policy.everyNth !== 0 || this.busy || this.load() > this.policy.cpuBudget) {
      this.skipped += pick.length;
      return;
    }
    this.busy = true;
    const t0 = performance.now();
    const started = Date.now();
    this.candidate.task
      .run(pick.map((i) => frames[i]!), 1)
      .then((r) => {
        this.inferCurrent.push(primary.inferMs);
        this.inferCandidate.push(r.inferMs);
        r.predictions.forEach((c, j) => {
          const i = pick[j]!;
          const cam = cameras?.[i] ?? '';
          const p = primary.predictions[i]!;
          const pm = (p.task ?? primary.session).manifest;
          const cm = this.candidate.task.manifest;
          const dp = decide(p, pm, this.thresholds.minConfidence(cam, pm)).decision;
          const dc = decide(c, cm, this.thresholds.minConfidence(cam, cm)).decision;
          this.frames++;
          if (dp === dc) this.sameDecision++;
          if (p.label === c.label) this.sameTop1++;
          if (dp === 'NG') this.ngCurrent++;
          if (dc === 'NG') this.ngCandidate++;
          if (dp !== dc || p.label !== c.label) this.report?.({ camera: cam, frame: frames[i]!, candidate: { model: this.candidate.task.ref, label: c.label, decision: dc } });
        });
      })
      .catch((e: unknown) => {
        this.errors++;
        this.lastError = (e as Error)?.message ?? String(e);
      })
      .finally(() => {
        this.spans.push([started, performance.now() - t0]);
        this.busy = false;
        for (const f of this.idle) f();
        this.idle.clear();
      });
  }

  /** Resolves when no candidate run is in flight. */
  settled(): Promise<void> {
    return this.busy ? new Promise((r) => this.idle.add(r)) : Promise.resolve();
  }

  /** Share of the last 5 s the candidate spent running. */
  private load(): number {
    const now = Date.now();
    while (this.spans.length > 0 && this.spans[0]![0] + this.spans[0]![1] < now - BUDGET_WINDOW_MS) this.spans.shift();
    const busy = this.spans.reduce((s, [, d]) => s + d, 0);
    return busy / BUDGET_WINDOW_MS;
  }

  figures(): ShadowFigures {
    const n = this.frames;
    const q = (r: QuantileRing) => (r.count === 0 ? null : { p50: r.quantile(0.5)!, p99: r.quantile(0.99)! });
    return {
      frames: n,
      skipped: this.skipped,
      errors: this.errors,
      decisionAgreement: n ? this.sameDecision / n : null,
      top1Agreement: n ? this.sameTop1 / n : null,
      ngRate: { current: n ? this.ngCurrent / n : null, candidate: n ? this.ngCandidate / n : null },
      inferMs: { current: q(this.inferCurrent), candidate: q(this.inferCandidate) },
    };
  }

  /** null while undecided (fewer than minFrames compared and no error past the bound). */
  verdict(): Verdict | null {
    const p = this.policy;
    if (this.errors > p.maxErrors) return { ok: false, code: 'SHADOW_INFERENCE_FAILED', message: `the candidate failed ${this.errors} run(s) in shadow (shadow.maxErrors ${p.maxErrors}): ${this.lastError}` };
    if (this.frames < p.minFrames) return null;
    return judge(this.figures(), p);
  }
}

/** The promotion criteria over shadow figures (every one must hold); pure, for tests and the docs. */
export function judge(f: ShadowFigures, p: ShadowPolicy): Verdict {
  const n = f.frames;
  if (n === 0) return { ok: true };
  if (f.decisionAgreement! < p.minDecisionAgreement) {
    return { ok: false, code: 'SHADOW_DISAGREES', message: `OK/NG decisions agree on ${pct(f.decisionAgreement!)} of ${n} frames, below shadow.minDecisionAgreement ${pct(p.minDecisionAgreement)}` };
  }
  if (p.minTop1Agreement !== undefined && f.top1Agreement! < p.minTop1Agreement) {
    return { ok: false, code: 'SHADOW_TOP1_DISAGREES', message: `top-1 labels agree on ${pct(f.top1Agreement!)} of ${n} frames, below shadow.minTop1Agreement ${pct(p.minTop1Agreement)}` };
  }
  const diffPt = 100 * Math.abs(f.ngRate.candidate! - f.ngRate.current!);
  if (diffPt > p.maxNgRateDiffPt) {
    return { ok: false, code: 'SHADOW_NG_RATE', message: `NG rate ${pct(f.ngRate.candidate!)} against ${pct(f.ngRate.current!)} now: ${diffPt.toFixed(1)} points apart, more than shadow.maxNgRateDiffPt ${p.maxNgRateDiffPt}` };
  }
  const cur = f.inferMs.current?.p99;
  const cand = f.inferMs.candidate?.p99;
  if (p.maxLatencyRatio !== undefined && cur !== undefined && cand !== undefined && cur > 0 && cand / cur > p.maxLatencyRatio) {
    return { ok: false, code: 'SHADOW_TOO_SLOW', message: `inference p99 ${cand.toFixed(2)} ms against ${cur.toFixed(2)} ms now (×${(cand / cur).toFixed(2)}), above shadow.maxLatencyRatio ${p.maxLatencyRatio}` };
  }
  return { ok: true };
}
