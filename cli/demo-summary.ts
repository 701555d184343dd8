/**
 * What the demo prints about each part and at the end, from what a line PC receives (the MQTT
 * results) and the known truth of each frame. An inspection model (okLabels) is judged as a
 * quality engineer would (runtime/pipeline/inspection.ts): escape rate, false-reject rate, AUROC
 * defect-vs-ok, per class, and the threshold that holds false rejects ≤ 10 %. A sorting model
 * (no okLabels) is judged on accuracy, its NG being "not sure: to manual check".
 */
import type { Manifest } from '../runtime/artifact/manifest.ts';
import type { ResultMessage } from '../runtime/mqtt/client.ts';
import { inspectionMetrics, pctText, type InspectedPart } from '../runtime/pipeline/inspection.ts';

export interface GateEvent {
  frameId: string;
  line: string;
  /** Gate actuation time − the frame's capture time. */
  afterCaptureMs: number;
}

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
const inspecting = (m: Manifest) => m.thresholds.okLabels !== undefined;

/** One line per result as it arrives. */
export function partLine(m: ResultMessage, truth: string | undefined, manifest: Manifest): string {
  const r = m.result;
  const head = `  #${String(r.seq).padStart(3)} frame ${String(r.frameId).padStart(3)} ${r.decision} ${r.label.padEnd(12)}`;
  const tail = `(truth ${truth ?? '?'}) capture→publish ${r.latency.totalMs.toFixed(1)} ms`;
  if (!inspecting(manifest)) return `${head} ${(100 * r.score).toFixed(1).padStart(5)} % ${r.label === truth ? '✓' : '✗'} ${tail}`;
  const good = truth !== undefined && manifest.thresholds.okLabels!.includes(truth);
  const verdict = r.decision === 'OK' ? (good ? '✓ passed      ' : '✗ ESCAPE      ') : good ? '✗ false reject' : '✓ caught      ';
  return `${head} p(ok) ${(100 * (r.okScore ?? 0)).toFixed(1).padStart(5)} % ${verdict} ${tail}`;
}

export interface SummaryInput {
  results: readonly ResultMessage[];
  /** Truth per frame id (1-based frame number → class name). */
  truth: (frameId: string) => string | undefined;
  manifest: Manifest;
  gate: readonly GateEvent[];
  gateDelayMs: number;
  stats: { framesIn: number; dropped: number; fpsProcessed: number };
  fps: number;
  wallSeconds: number;
}

function gateLines(s: SummaryInput, ng: readonly ResultMessage[]): string[] {
  const diverted = new Set(s.gate.map((g) => g.frameId));
  const missed = ng.filter((m) => !diverted.has(m.result.frameId)).map((m) => m.result.frameId);
  const extra = [...diverted].filter((f) => !ng.some((m) => m.result.frameId === f));
  const lags = s.gate.map((g) => g.afterCaptureMs);
  const timing = lags.length ? `, actuated ${Math.min(...lags).toFixed(0)}–${Math.max(...lags).toFixed(0)} ms after capture (configured ${s.gateDelayMs} ms)` : '';
  const check = missed.length === 0 && extra.length === 0 ? 'every NG part, nothing else' : `MISMATCH: NG parts not diverted ${missed.join(', ') || 'none'}; diverted but not NG ${extra.join(', ') || 'none'}`;
  return [`  reject gate (serial line, in-process mock port): ${s.gate.length} parts diverted: ${check}${timing}`];
}

function inspectionLines(s: SummaryInput): string[] {
  const { manifest: m } = s;
  const index = (l: string | undefined) => (l === undefined ? -1 : m.labels.indexOf(l));
  const parts: InspectedPart[] = s.results.map((r) => ({ truth: index(s.truth(r.result.frameId)), predicted: index(r.result.label), okScore: r.result.okScore ?? 0 }));
  const known = parts.filter((p) => p.truth >= 0);
  const okClasses = m.thresholds.okLabels!.map((l) => m.labels.indexOf(l));
  const i = inspectionMetrics(known, { okClasses, minConfidence: m.thresholds.minConfidence }, m.labels.length);
  const op = i.atMaxFrr;
  // Good classes first: their "failed" column is the false rejects, a defect's is its catch rate.
  const order = [...okClasses, ...m.labels.map((_, k) => k).filter((k) => !okClasses.includes(k))];
  const w = Math.max(12, ...m.labels.map((l) => l.length));
  const perClass = order
    .filter((k) => i.perClass[k]!.count > 0)
    .map((k) => `    ${m.labels[k]!.padEnd(w)} ${String(i.perClass[k]!.count).padStart(5)} ${pctText(i.perClass[k]!.recall, 0).padStart(7)} ${pctText(i.perClass[k]!.failRate, 0).padStart(7)}`);
  return [
    `  inspected ${i.parts} parts (${i.good} good, ${i.defective} defective) with okLabels [${m.thresholds.okLabels!.join(', ')}], minConfidence ${m.thresholds.minConfidence} (the manifest's threshold)`,
    `  escape rate        ${pctText(i.escapeRate).padStart(7)}  (${i.escapes} of ${i.defective} defective parts passed as OK: these reach the customer)`,
    `  false-reject rate  ${pctText(i.falseRejectRate).padStart(7)}  (${i.falseRejects} of ${i.good} good parts failed: scrap or re-inspection)`,
    `  AUROC defect-vs-ok ${i.auroc === null ? '      –' : i.auroc.toFixed(3).padStart(7)}  (how well p(ok) ranks good above defective parts, whatever the threshold)`,
    `  per class (recall: the top label right; failed: sent to the reject gate)`,
    `    ${'class'.padEnd(w)} ${'parts'.padStart(5)} ${'recall'.padStart(7)} ${'failed'.padStart(7)}`,
    ...perClass,
    op.reachable
      ? `  the strictest threshold holding false rejects ≤ 10 % here: minConfidence ${op.minConfidence.toFixed(3)} → escape ${pctText(op.escapeRate)}, false reject ${pctText(op.falseRejectRate)} (MQTT set-threshold applies it on a device)`
      : `  no threshold holds false rejects ≤ 10 % here: ${pctText(op.falseRejectRate)} of good parts have a defect as their top label`,
  ];
}

function sortingLines(s: SummaryInput): string[] {
  const correct = s.results.filter((m) => m.result.label === s.truth(m.result.frameId)).length;
  const ok = s.results.filter((m) => m.result.decision === 'OK');
  const okRight = ok.filter((m) => m.result.label === s.truth(m.result.frameId)).length;
  const n = s.results.length;
  return [
    `  accuracy against the known labels: ${correct}/${n} = ${((100 * correct) / Math.max(1, n)).toFixed(1)} %`,
    `  decisions: ${ok.length} OK (confident; ${okRight} of them right = ${((100 * okRight) / Math.max(1, ok.length)).toFixed(1)} %), ${n - ok.length} NG (below the manifest's minConfidence: sent to manual check)`,
    `  (a sorting model: its manifest declares no okLabels, so there is no escape or false-reject rate; an inspection model reports them)`,
  ];
}

export function summaryLines(s: SummaryInput): string[] {
  const lat = s.results.map((m) => m.result.latency.totalMs);
  const infer = s.results.map((m) => m.result.latency.inferMs);
  const gaps = s.results.filter((m) => m.gap).length;
  const ng = s.results.filter((m) => m.result.decision === 'NG');
  return [
    `  frames from the camera ${s.stats.framesIn}, results ${s.results.length} (dropped by newest-frame-wins ${s.stats.dropped}, seq gaps ${gaps})`,
    ...(inspecting(s.manifest) ? inspectionLines(s) : sortingLines(s)),
    ...gateLines(s, ng),
    `  capture→publish latency p50 ${q(lat, 0.5).toFixed(1)} ms, p99 ${q(lat, 0.99).toFixed(1)} ms; inference p50 ${q(infer, 0.5).toFixed(2)} ms`,
    `  processed ${s.stats.fpsProcessed.toFixed(1)} fps (the camera paced at ${s.fps} fps); wall time ${s.wallSeconds.toFixed(1)} s`,
  ];
}
