/**
 * The training report: one self-contained HTML page with SVG charts (loss and accuracy per
 * epoch) and the last confusion matrix. No scripts, no external assets: it opens anywhere.
 */
import { writeFileSync } from 'node:fs';
import type { TrainState } from './checkpoint.ts';
import type { EpochRecord } from './epoch-record.ts';
import { pctText } from '../../runtime/pipeline/inspection.ts';

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

interface Series { name: string; color: string; values: number[] }

export function lineChart(title: string, xs: number[], series: Series[], yLabel: string, w = 460, h = 240): string {
  const pad = { l: 48, r: 12, t: 24, b: 30 };
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  let lo = Math.min(...all, Infinity);
  let hi = Math.max(...all, -Infinity);
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
  const x0 = xs[0] ?? 0;
  const x1 = Math.max(xs.at(-1) ?? 1, x0 + 1);
  const X = (x: number) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const Y = (y: number) => h - pad.b - ((y - lo) / (hi - lo)) * (h - pad.t - pad.b);
  const ticks = [lo, (lo + hi) / 2, hi];
  const paths = series
    .map((s) => {
      const pts = s.values.map((v, i) => `${X(xs[i]!).toFixed(1)},${Y(v).toFixed(1)}`).join(' ');
      return `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts}"/>` + s.values.map((v, i) => `<circle cx="${X(xs[i]!).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="2.5" fill="${s.color}"/>`).join('');
    })
    .join('');
  const legend = series.map((s, i) => `<text x="${pad.l + 8 + i * 110}" y="16" font-size="11" fill="${s.color}">■ ${esc(s.name)}</text>`).join('');
  const axis = ticks.map((t) => `<text x="${pad.l - 6}" y="${Y(t) + 4}" font-size="10" text-anchor="end">${t.toPrecision(3)}</text><line x1="${pad.l}" x2="${w - pad.r}" y1="${Y(t)}" y2="${Y(t)}" stroke="#ddd"/>`).join('');
  return `<figure><figcaption>${esc(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif">${axis}${legend}${paths}<text x="${w / 2}" y="${h - 6}" font-size="11" text-anchor="middle">epoch</text><text x="12" y="${h / 2}" font-size="11" transform="rotate(-90 12 ${h / 2})" text-anchor="middle">${esc(yLabel)}</text></svg></figure>`;
}

export function confusionTable(classes: string[], m: number[][]): string {
  if (!m.length) return '';
  const max = Math.max(1, ...m.flat());
  const head = `<tr><th>true \\ predicted</th>${classes.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>`;
  const rows = m
    .map((row, i) => `<tr><th>${esc(classes[i] ?? String(i))}</th>${row.map((v, j) => `<td style="background:rgba(${i === j ? '30,120,60' : '200,40,40'},${(v / max).toFixed(2)})">${v}</td>`).join('')}</tr>`)
    .join('');
  return `<table class="cm">${head}${rows}</table>`;
}

/** Divergence, collapse, no learning (compiler/train/diagnose.ts): at the top, where nobody misses them. */
function warningsHtml(s: TrainState): string {
  const ws = s.warnings ?? [];
  if (!ws.length) return '';
  const items = ws.map((w) => `<li><b>${esc(w.code)}</b> (epoch ${w.epoch}): ${esc(w.message)}.<br>Likely cause: ${esc(w.cause)}.<br>Fix: ${esc(w.fix)}.</li>`).join('');
  return `<div class="warn"><h2>This run needs attention</h2><ul>${items}</ul></div>`;
}

/** Inspection tasks: the figures a quality engineer reads, at the best epoch and the manifest threshold. */
function inspectionHtml(s: TrainState, best: EpochRecord | undefined): string {
  const i = best?.inspection;
  if (!i) return '';
  const op = i.atMaxFrr;
  const rows = s.classes.map((c, k) => `<tr><td>${esc(c)}</td><td>${i.perClass[k]?.count ?? 0}</td><td>${pctText(i.perClass[k]?.recall ?? null)}</td><td>${pctText(i.perClass[k]?.failRate ?? null)}</td></tr>`).join('');
  const point = op.reachable
    ? `At minConfidence ${op.minConfidence.toFixed(4)}, the strictest that holds false rejects ≤ ${pctText(op.maxFrr, 0)}: escape rate <b>${pctText(op.escapeRate)}</b>, false rejects ${pctText(op.falseRejectRate)}.`
    : `No threshold holds false rejects ≤ ${pctText(op.maxFrr, 0)}: even at minConfidence 0, ${pctText(op.falseRejectRate)} of good parts get a defect as their top label.`;
  return `<h2>Inspection (validation, epoch ${best!.epoch})</h2>
<p>${i.good} good and ${i.defective} defective parts. At the manifest threshold: escape rate (defective parts passed) <b>${pctText(i.escapeRate)}</b> (${i.escapes}), false-reject rate (good parts failed) <b>${pctText(i.falseRejectRate)}</b> (${i.falseRejects}); AUROC defect-vs-ok <b>${i.auroc === null ? '–' : i.auroc.toFixed(3)}</b>.<br>${point}</p>
<table><tr><th>class</th><th>parts</th><th>recall</th><th>failed</th></tr>${rows}</table>`;
}

export function renderReport(s: TrainState): string {
  const ep = s.history.map((h) => h.epoch);
  const last = s.history.at(-1);
  const perClass = last ? `<table><tr><th>class</th><th>top-1</th></tr>${s.classes.map((c, i) => `<tr><td>${esc(c)}</td><td>${(100 * (last.perClass[i] ?? 0)).toFixed(1)} %</td></tr>`).join('')}</table>` : '';
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(s.name)} — EdgePrompt training report</title>
<style>body{font-family:sans-serif;margin:24px;color:#222}.warn{border:2px solid #c62828;background:#fdecea;padding:4px 16px;margin:12px 0}figure{display:inline-block;margin:8px}td,th{padding:3px 8px;border:1px solid #ccc;text-align:right}table{border-collapse:collapse;margin:8px 0}.cm td{min-width:36px}</style></head><body>
<h1>${esc(s.name)}</h1>
${warningsHtml(s)}
<p>method <b>${esc(s.method)}</b> ${esc(JSON.stringify(s.options))} on <b>${esc(s.arch)}</b> (backbone sha256 ${esc(s.backboneSha256.slice(0, 16))}…), engine ${esc(s.engine)} (${esc(s.backend)}), seed ${s.seed}.<br>
${s.epoch} epoch(s), ${s.globalStep} steps; best validation top-1 <b>${(100 * Math.max(0, s.bestTop1)).toFixed(2)} %</b> at epoch ${s.bestEpoch}. Updated ${esc(s.updatedAt ?? s.createdAt)}.</p>
${lineChart('loss', ep, [{ name: 'train', color: '#1f77b4', values: s.history.map((h) => h.trainLoss) }, { name: 'validation', color: '#d62728', values: s.history.map((h) => h.valLoss) }], 'cross-entropy')}
${lineChart('validation top-1', ep, [{ name: 'top-1', color: '#2ca02c', values: s.history.map((h) => 100 * h.valTop1) }], '%')}
<h2>Confusion matrix (last epoch, validation)</h2>${confusionTable(s.classes, s.lastConfusion)}
<h2>Per-class accuracy</h2>${perClass}
${inspectionHtml(s, s.history.find((h) => h.epoch === s.bestEpoch))}
</body></html>`;
}

export function writeReport(file: string, s: TrainState): void {
  writeFileSync(file, renderReport(s));
}
