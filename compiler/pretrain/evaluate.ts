/**
 * After each pretraining epoch: every source's validation top-1 through its own head (the
 * prediction is the best class of that source's columns of the [B, ΣC] scores), and, when the
 * config names a held-out line, the linear probe of its frozen features (probe.ts). The epoch's
 * top-1 (which the loop keeps the best epoch by) is the validation line's probe when the config
 * names one — never the benchmark line's — else the mean over sources; each figure is kept in the history under its name, with the
 * load average (the machine is shared) and the seconds evaluation took.
 */
import { loadavg } from 'node:os';
import type { Engine } from '../train/engine.ts';
import type { EvalMetrics } from '../train/metrics.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import type { Batch } from '../data/types.ts';
import type { Mixture } from './mixture.ts';
import { extractFeatures, linearProbe, type ProbeResult } from './probe.ts';

export interface HeldOutProbe {
  train: Batch[];
  val: Batch[];
  classes: string[];
  /** Run the probe after epochs where (epoch % every === 0), and always after the last. */
  every: number;
}

export interface SourceScore {
  name: string;
  classes: string[];
}

/** Per-source top-1 (argmax inside each source's columns), cross-entropy and recall per global class. */
export async function evaluateSources(engine: Engine, data: Mixture, sources: readonly SourceScore[], batchSize: number): Promise<EvalMetrics & { bySource: Record<string, number> }> {
  const total = data.classes.length;
  const confusion = Array.from({ length: total }, () => new Array<number>(total).fill(0));
  const hit = sources.map(() => 0);
  const seen = sources.map(() => 0);
  let lossSum = 0;
  let n = 0;
  const owner = (g: number) => {
    let i = data.offsets.length - 1;
    while (data.offsets[i]! > g) i--;
    return i;
  };
  for await (const b of data.valBatches(batchSize)) {
    const logits = await engine.predict(b.x, b.y.length);
    for (let r = 0; r < b.y.length; r++) {
      const g = b.y[r]!;
      const i = owner(g);
      const lo = data.offsets[i]!;
      const C = sources[i]!.classes.length;
      let best = lo;
      for (let c = lo + 1; c < lo + C; c++) if (logits[r * total + c]! > logits[r * total + best]!) best = c;
      let z = 0;
      for (let c = lo; c < lo + C; c++) z += Math.exp(logits[r * total + c]! - logits[r * total + best]!);
      lossSum += Math.log(z) + logits[r * total + best]! - logits[r * total + g]!;
      confusion[g]![best]!++;
      seen[i]!++;
      if (best === g) hit[i]!++;
      n++;
    }
  }
  const bySource = Object.fromEntries(sources.map((s, i) => [s.name, seen[i] ? hit[i]! / seen[i]! : 0]));
  const perClass = confusion.map((row, c) => {
    const t = row.reduce((a, v) => a + v, 0);
    return t ? row[c]! / t : 0;
  });
  const top1 = Object.values(bySource).reduce((a, v) => a + v, 0) / sources.length;
  return { top1, perClass, confusion, count: n, loss: n ? lossSum / n : 0, bySource };
}

export function pretrainEvaluator(o: { cfg: VitConfig; data: Mixture; sources: readonly SourceScore[]; probe?: HeldOutProbe; validation?: HeldOutProbe; epochs: number }) {
  // CPU seconds of this process (every thread) since the previous epoch: unlike wall time, it
  // does not grow when other work shares the cores.
  let cpu = process.cpuUsage();
  return async (engine: Engine, batchSize: number, epoch: number): Promise<EvalMetrics> => {
    const t0 = performance.now();
    const m = await evaluateSources(engine, o.data, o.sources, batchSize);
    const details: Record<string, number> = {};
    for (const [k, v] of Object.entries(m.bySource)) details[`top1.${k}`] = v;
    const p = o.probe;
    if (p && (epoch === o.epochs || (p.every > 0 && epoch % p.every === 0))) {
      const r = await probeHeldOut(o.cfg, engine.params(), p);
      details['probe.top1'] = r.top1;
      details['probe.auroc'] = r.auroc;
    }
    let top1 = m.top1;
    if (o.validation) {
      // Every epoch: the published epoch is the best of these.
      const r = await probeHeldOut(o.cfg, engine.params(), o.validation);
      details['validation.top1'] = r.top1;
      details['validation.auroc'] = r.auroc;
      top1 = r.top1;
    }
    details.load1 = loadavg()[0]!;
    const used = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    details.cpuSeconds = (used.user + used.system) / 1e6;
    details.evalSeconds = (performance.now() - t0) / 1000;
    return { top1, perClass: m.perClass, confusion: m.confusion, count: m.count, loss: m.loss, details };
  };
}

export async function probeHeldOut(cfg: VitConfig, params: StateDict, p: HeldOutProbe): Promise<ProbeResult> {
  const train = await extractFeatures(cfg, params, p.train);
  const val = await extractFeatures(cfg, params, p.val);
  return linearProbe(train, val, p.classes.length, Math.max(0, p.classes.indexOf('ok')));
}
