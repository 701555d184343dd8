/**
 * The inspection columns of the benchmark tables (issue 15 item 5): for a parts task, what a
 * quality engineer reads at the best epoch (the one whose top-1 the table reports), on the
 * validation set, with okLabels [ok] at the manifest threshold (minConfidence 0.5): escape rate
 * (defective parts passed), false-reject rate (good parts failed), AUROC defect-vs-ok, and the
 * escape rate at the strictest threshold that holds false rejects ≤ 10 %; mean ± std over seeds.
 */
import type { InspectionMetrics } from '../runtime/pipeline/inspection.ts';
import type { TrainState } from '../compiler/train/checkpoint.ts';
import { meanStd } from './transfer-task.ts';

/** The best epoch's inspection figures of a finished run (undefined for a task without okLabels). */
export const bestInspection = (s: TrainState): InspectionMetrics | undefined => s.history.find((h) => h.epoch === s.bestEpoch)?.inspection;

const cell = (xs: (number | null | undefined)[], scale = 100, digits = 1): string => {
  const v = xs.filter((x): x is number => typeof x === 'number');
  if (v.length === 0) return xs.length ? 'n/a' : '–';
  const { mean, std } = meanStd(v.map((x) => scale * x));
  const missing = xs.length - v.length;
  return `${mean.toFixed(digits)} ± ${std.toFixed(digits)}${missing ? ` (${missing} seed(s) n/a)` : ''}`;
};

export const INSPECTION_HEADER = 'escape % | false reject % | AUROC | escape % at false reject ≤ 10 %';
export const INSPECTION_RULE = '---|---|---|---';

/** Four cells (without the outer pipes) for the seeds of one row; '–' cells for a task without okLabels. */
export function inspectionCells(runs: readonly (InspectionMetrics | undefined)[]): string {
  if (runs.every((r) => r === undefined)) return '– | – | – | –';
  const rs = runs.filter((r): r is InspectionMetrics => r !== undefined);
  return [
    cell(rs.map((r) => r.escapeRate)),
    cell(rs.map((r) => r.falseRejectRate)),
    cell(rs.map((r) => r.auroc), 1, 3),
    cell(rs.map((r) => (r.atMaxFrr.reachable ? r.atMaxFrr.escapeRate : null))),
  ].join(' | ');
}

/** Per-class recall (mean over seeds) of the rows that inspect, as a markdown table. */
export function perClassTable(rows: readonly { label: string; classes: readonly string[]; runs: readonly (InspectionMetrics | undefined)[] }[]): string {
  const withData = rows.filter((r) => r.runs.some((x) => x !== undefined));
  if (withData.length === 0) return '';
  const classes = withData[0]!.classes;
  const head = `| row | ${classes.map((c) => `${c} recall % (failed %)`).join(' | ')} |\n|---|${classes.map(() => '---').join('|')}|`;
  const lines = withData.map((r) => {
    const rs = r.runs.filter((x): x is InspectionMetrics => x !== undefined);
    const cells = classes.map((_, k) => {
      const rec = meanStd(rs.map((x) => 100 * (x.perClass[k]?.recall ?? 0))).mean;
      const fail = meanStd(rs.map((x) => 100 * (x.perClass[k]?.failRate ?? 0))).mean;
      return `${rec.toFixed(1)} (${fail.toFixed(1)})`;
    });
    return `| ${r.label} | ${cells.join(' | ')} |`;
  });
  return `${head}\n${lines.join('\n')}`;
}
