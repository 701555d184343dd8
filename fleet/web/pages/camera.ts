// Camera: the latest frame (the device's `snapshot` command) with the verdict over it, a live
// ticker, OK/NG counters, yield per hour and per shift, the score distribution and latency.

import { html } from 'htm/preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { Counts, ResultView } from '../../dashboard/protocol.ts';
import { Chart, histogramOptions, hourlyOptions, latencyOptions } from '../charts.ts';
import { dateTime, num, pct, time } from '../fmt.ts';
import { markPainted, useStore, type State } from '../store.ts';
import { Ticker } from './fleet.ts';

function Counter({ label, c, testid }: { label: string; c: Counts; testid: string }) {
  return html`<div class="card" data-testid=${testid}>
    <div class="big"><span class="ok" data-testid="ok">${c.ok}</span> / <span class="ng" data-testid="ng">${c.ng}</span></div>
    ${label} · yield <b data-testid="yield">${pct(c)}</b>
  </div>`;
}

interface Snap {
  url: string;
  frameId: string;
  captureTs: number;
}

function Snapshot({ device, camera, results }: { device: string; camera: string; results: ResultView[] }) {
  const [snap, setSnap] = useState<Snap | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const load = async () => {
    setBusy(true);
    try {
      const r = await fetch(`/api/snapshot?device=${encodeURIComponent(device)}&camera=${encodeURIComponent(camera)}`);
      if (!r.ok) {
        const e = (await r.json().catch(() => ({}))) as { code?: string; message?: string };
        setError(`${e.code ?? r.status}: ${e.message ?? r.statusText}`);
        return;
      }
      const blob = await r.blob();
      setSnap((old) => {
        if (old) URL.revokeObjectURL(old.url);
        return { url: URL.createObjectURL(blob), frameId: r.headers.get('x-frame-id') ?? '?', captureTs: Number(r.headers.get('x-capture-ts')) };
      });
      setError(null);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    void load();
    const t = setInterval(() => document.visibilityState === 'visible' && void load(), 5000);
    return () => clearInterval(t);
  }, [device, camera]);
  // The verdict for this very frame when its result is here, else the newest one.
  const same = snap ? results.find((r) => r.frameId === snap.frameId) : undefined;
  const v = same ?? results[0];
  return html`<div class="snapshot" data-testid="snapshot">
    ${snap ? html`<img src=${snap.url} alt=${`latest frame of ${camera}`} />` : html`<div class="placeholder">${error ?? 'asking the device for a frame…'}</div>`}
    ${v ? html`<div class=${`verdict ${v.decision === 'OK' ? 'ok-bg' : 'ng-bg'}`} data-testid="verdict">${v.decision} · ${v.label} ${(100 * v.score).toFixed(1)} %${same ? '' : ` (newest result, frame ${v.frameId})`}</div>` : ''}
    <div class="caption">${snap ? `frame ${snap.frameId} at ${time(snap.captureTs)}` : ''} ${error && snap ? html`<span class="ng">${error}</span>` : ''}
      <button onClick=${() => void load()} disabled=${busy}>refresh</button></div>
  </div>`;
}

export function CameraPage() {
  const camera = useStore((s) => s.camera);
  const fleet = useStore((s) => s.fleet);
  return camera ? html`<${CameraBody} key=${`${camera.device}/${camera.camera}`} c=${camera} fleet=${fleet} />` : null;
}

function CameraBody({ c, fleet }: { c: NonNullable<State['camera']>; fleet: State['fleet'] }) {
  useEffect(() => markPainted(), [c.results]);
  const sum = c.summary;
  const dev = fleet?.devices.find((d) => d.device === c.device);
  const cam = dev?.cameras.find((x) => x.camera === c.camera);
  const hours = useMemo(() => (sum ? [sum.hours.map((h) => h.start), sum.hours.map((h) => h.ok), sum.hours.map((h) => h.ng)] : [[], [], []]) as [number[], number[], number[]], [sum]);
  const hist = useMemo(() => {
    const bins = 20;
    const ok = new Array<number>(bins).fill(0);
    const ng = new Array<number>(bins).fill(0);
    for (const r of c.results) (r.decision === 'OK' ? ok : ng)[Math.min(bins - 1, Math.floor(r.score * bins))]!++;
    return [ok.map((_, i) => (i + 0.5) / bins), ok, ng] as [number[], number[], number[]];
  }, [c.results]);
  const lat = useMemo(() => {
    const rs = [...c.results].reverse();
    return [rs.map((r) => r.captureTs), rs.map((r) => r.totalMs), rs.map((r) => r.inferMs)] as [number[], number[], number[]];
  }, [c.results]);
  return html`
    <h2>${c.device} / ${c.camera}
      <span class="muted small"> ${cam ? `${cam.paused ? 'paused' : (cam.state ?? '')} · threshold ${num(cam.threshold, 2)} · ${cam.model ?? ''} ${cam.prompt ?? ''}` : ''}</span></h2>
    <section class="cards">
      <${Counter} label=${sum?.counters.shift.name ? `shift ${sum.counters.shift.name}` : 'this shift'} c=${sum?.counters.shift ?? { ok: 0, ng: 0 }} testid="count-shift" />
      <${Counter} label="today" c=${sum?.counters.today ?? { ok: 0, ng: 0 }} testid="count-today" />
      <${Counter} label="last 24 h" c=${sum?.counters.last24h ?? { ok: 0, ng: 0 }} testid="count-24h" />
    </section>
    <section class="two">
      <div><h3>Latest frame</h3><${Snapshot} device=${c.device} camera=${c.camera} results=${c.results} /></div>
      <div><h3>Live results</h3><${Ticker} results=${c.results.slice(0, 12)} testid="camera-ticker" /></div>
    </section>
    <section class="two">
      <div><h3>Yield per hour (last 24 h)</h3><${Chart} options=${hourlyOptions()} data=${hours} testid="chart-hours" /></div>
      <div><h3>Score distribution (last ${c.results.length} results)</h3><${Chart} options=${histogramOptions()} data=${hist} testid="chart-scores" /></div>
    </section>
    <section class="two">
      <div><h3>Latency (last ${c.results.length} results)</h3><${Chart} options=${latencyOptions()} data=${lat} testid="chart-latency" /></div>
      <div><h3>Yield per shift (this one and the last 7 days' with results)</h3>
        <table data-testid="shifts"><thead><tr><th>shift</th><th>from</th><th>to</th><th>OK</th><th>NG</th><th>yield</th></tr></thead>
          <tbody>${(sum?.shifts ?? []).filter((w, i) => i === 0 || w.ok + w.ng > 0).map((w) => html`<tr><td>${w.name}</td><td>${dateTime(w.start)}</td><td>${time(w.end)}</td><td class="ok">${w.ok}</td><td class="ng">${w.ng}</td><td>${pct(w)}</td></tr>`)}</tbody>
        </table>
        ${sum && sum.shifts.length === 0 ? html`<p class="muted">No shifts configured (--shifts).</p>` : ''}
      </div>
    </section>
  `;
}
