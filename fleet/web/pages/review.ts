// Review: the frames devices kept (docs/data-loop.md). The queue holds frames no label names yet,
// the NG gallery every frame decided NG, "all" everything kept; newest or most uncertain first.
// The keyboard does the work: ←/→ (or k/j) move, 1–9 label the selected frame with that class,
// Enter confirms what the model said; in the queue a labelled frame leaves and the next is
// selected. Beside it: the frame large, why it was kept, and its label history (who, when, from
// where). Above: the escape and false-reject rates the line's own labels imply, per camera and
// release, and the cameras whose predictions drifted.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import type { FrameDetail, FrameSummary, LabelRequestBody, LineRates } from '../../dashboard/protocol.ts';
import { dateTime, num, time } from '../fmt.ts';
import { api, useStore } from '../store.ts';

type View = 'queue' | 'ng' | 'all';
type Order = 'newest' | 'uncertain';

const keyOf = (f: { device: string; seqEpoch: string; seq: number }) => `device=${encodeURIComponent(f.device)}&seqEpoch=${encodeURIComponent(f.seqEpoch)}&seq=${f.seq}`;
const rate = (x: number | null) => (x === null ? '–' : `${(100 * x).toFixed(1)} %`);

function Rates({ rows }: { rows: LineRates[] }) {
  return html`<table data-testid="line-rates">
    <thead><tr><th>device / camera</th><th>model</th><th>release</th><th>labelled</th><th>good / defective</th><th>escapes</th><th>escape rate</th><th>false rejects</th><th>false-reject rate</th></tr></thead>
    <tbody>${rows.map(
      (r) => html`<tr><td>${r.device} / ${r.camera}</td><td class="mono">${r.model}</td><td>${r.release ?? '–'}</td><td>${r.labelled}</td><td>${r.good} / ${r.defective}</td>
        <td class=${r.escapes ? 'ng' : ''}>${r.escapes}</td><td data-testid="escape-rate">${rate(r.escapeRate)}</td><td>${r.falseRejects}</td><td data-testid="false-reject-rate">${rate(r.falseRejectRate)}</td></tr>`,
    )}</tbody>
  </table>${rows.length === 0 ? html`<p class="muted">No result has a label from the line yet (PLC LABEL, the label command, or a review here).</p>` : ''}`;
}

function Drift() {
  const fleet = useStore((s) => s.fleet);
  const cams = (fleet?.devices ?? []).flatMap((d) => d.cameras.filter((c) => c.drift).map((c) => ({ device: d.device, ...c })));
  if (cams.length === 0) return null;
  return html`<p data-testid="drift">Drift (score PSI, class PSI over the last results): ${cams.map(
    (c) => html`<span class=${c.drift!.drifting ? 'badge ng' : 'muted'}>${c.device}/${c.camera} ${num(c.drift!.scorePsi, 2)} · ${num(c.drift!.classPsi, 2)}${c.drift!.drifting ? ' drifting' : ''}</span> `,
  )}</p>`;
}

function Thumb({ f, selected, onClick }: { f: FrameSummary; selected: boolean; onClick: () => void }) {
  const truth = f.truth;
  return html`<div class=${`thumb ${selected ? 'selected' : ''} ${f.decision === 'OK' ? 'ok-border' : 'ng-border'}`} onClick=${onClick} data-testid="thumb" data-seq=${f.seq}>
    <img src=${`/api/review/image?${keyOf(f)}`} alt=${`${f.device}/${f.camera} seq ${f.seq}`} loading="lazy" />
    <div class="small"><span class=${f.decision === 'OK' ? 'ok' : 'ng'}>${f.decision}</span> ${f.label} ${(100 * f.score).toFixed(0)} %</div>
    <div class="small muted">${f.camera} · ${time(f.keptTs)}</div>
    ${truth ? html`<div class="small" data-testid="truth"><b class=${truth.decision === 'OK' ? 'ok' : 'ng'}>${truth.class ?? truth.decision}</b> <span class="muted">(${truth.source})</span></div>` : ''}
  </div>`;
}

function Detail({ d, canAct }: { d: FrameDetail; canAct: boolean }) {
  return html`<div class="detail" data-testid="detail">
    <img src=${`/api/review/image?${keyOf(d)}`} alt="selected frame" />
    <p><b>${d.device} / ${d.camera}</b> seq ${d.seq}${d.triggerId ? ` · part ${d.triggerId}` : ''} · captured ${dateTime(d.captureTs)}</p>
    <p>The model (${d.model}, release ${d.release}) said <b class=${d.decision === 'OK' ? 'ok' : 'ng'}>${d.decision}</b>: ${d.label} ${(100 * d.score).toFixed(1)} %${d.okScore !== null ? `, p(good) ${(100 * d.okScore).toFixed(1)} %` : ''} against threshold ${d.threshold.toFixed(2)}. Kept for: ${d.reasons.join(', ')}.</p>
    <div class="classes" data-testid="classes">${d.classes.map(
      (c, i) => html`<span class=${`key ${(d.okLabels ?? d.classes).includes(c) ? 'ok' : 'ng'}`}>${i < 9 ? html`<kbd>${i + 1}</kbd> ` : ''}${c}</span> `,
    )}${canAct ? html`<span class="muted small"> · <kbd>Enter</kbd> confirms ${d.label} · <kbd>←</kbd><kbd>→</kbd> move</span>` : html`<span class="muted small"> (viewers cannot relabel)</span>`}</div>
    <h3>Label history</h3>
    <table data-testid="history">
      <thead><tr><th>when</th><th>who</th><th>from</th><th>truth</th></tr></thead>
      <tbody>${d.history.map((h) => html`<tr><td>${dateTime(h.ts)}</td><td>${h.by ?? '–'}</td><td>${h.source}</td><td class=${h.decision === 'OK' ? 'ok' : 'ng'}>${h.class ?? h.decision}</td></tr>`)}</tbody>
    </table>
    ${d.history.length === 0 ? html`<p class="muted">Not labelled yet.</p>` : ''}
  </div>`;
}

export function ReviewPage() {
  const canAct = useStore((s) => s.hello?.user.role === 'operator');
  const [view, setView] = useState<View>('queue');
  const [order, setOrder] = useState<Order>('newest');
  const [frames, setFrames] = useState<FrameSummary[]>([]);
  const [sel, setSel] = useState(0);
  const [detail, setDetail] = useState<FrameDetail | null>(null);
  const [rates, setRates] = useState<LineRates[]>([]);
  const [error, setError] = useState<string | null>(null);

  const load = async () => {
    const [f, r] = await Promise.all([api<FrameSummary[]>(`/api/review/frames?view=${view}&order=${order}&limit=120`), api<LineRates[]>('/api/review/rates')]);
    setFrames(f.status === 200 ? f.data : []);
    setRates(r.status === 200 ? r.data : []);
    setSel(0);
  };
  useEffect(() => void load(), [view, order]);
  const current = frames[Math.min(sel, frames.length - 1)];
  useEffect(() => {
    if (!current) return setDetail(null);
    void api<FrameDetail>(`/api/review/frame?${keyOf(current)}`).then((r) => setDetail(r.status === 200 ? r.data : null));
  }, [current?.device, current?.seqEpoch, current?.seq]);

  const label = async (cls: string) => {
    if (!current || !canAct) return;
    const body: LabelRequestBody = { device: current.device, seqEpoch: current.seqEpoch, seq: current.seq, class: cls };
    const r = await api<FrameDetail & { code?: string; message?: string }>('/api/review/label', body);
    if (r.status !== 200) return setError(`${r.data?.code ?? r.status}: ${r.data?.message ?? ''}`);
    setError(null);
    setDetail(r.data);
    void api<LineRates[]>('/api/review/rates').then((x) => x.status === 200 && setRates(x.data));
    if (view === 'queue') setFrames((fs) => fs.filter((f) => f !== current)); // labelled: it leaves the queue, the next one is selected
    else setFrames((fs) => fs.map((f) => (f === current ? { ...f, truth: r.data.truth, labels: r.data.history.length } : f)));
  };

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.target as HTMLElement | null)?.tagName === 'SELECT') return;
      if (e.key === 'ArrowRight' || e.key === 'j') setSel((i) => Math.min(i + 1, Math.max(0, frames.length - 1)));
      else if (e.key === 'ArrowLeft' || e.key === 'k') setSel((i) => Math.max(0, i - 1));
      else if (/^[1-9]$/.test(e.key) && detail) {
        const cls = detail.classes[Number(e.key) - 1];
        if (cls) void label(cls);
      } else if (e.key === 'Enter' && detail) void label(detail.label);
      else return;
      e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  return html`
    <h2>Line ground truth</h2>
    <${Drift} />
    <${Rates} rows=${rates} />
    <h2>Kept frames</h2>
    <div class="row">
      ${(['queue', 'ng', 'all'] as const).map((v) => html`<button class=${view === v ? 'active' : ''} data-testid=${`view-${v}`} onClick=${() => setView(v)}>${{ queue: 'Review queue', ng: 'NG gallery', all: 'All kept' }[v]}</button>`)}
      <label>order <select data-testid="order" value=${order} onChange=${(e: Event) => setOrder((e.target as HTMLSelectElement).value as Order)}>
        <option value="newest">newest first</option><option value="uncertain">most uncertain first</option></select></label>
      <span class="muted" data-testid="count">${frames.length} frame(s)</span>
      ${error ? html`<span class="ng" data-testid="error">${error}</span>` : ''}
    </div>
    <section class="review">
      <div class="gallery" data-testid="gallery">${frames.map((f, i) => html`<${Thumb} key=${keyOf(f)} f=${f} selected=${f === current} onClick=${() => setSel(i)} />`)}</div>
      ${detail ? html`<${Detail} d=${detail} canAct=${canAct} />` : html`<p class="muted">${view === 'queue' ? 'Nothing waits for review.' : 'No kept frames.'}</p>`}
    </section>
  `;
}
