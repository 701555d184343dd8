// Fleet: every device and camera at a glance — online/offline, model and prompt release, EP,
// health, OK/NG and yield this shift, last result, sequence gaps — and the newest results.

import { html } from 'htm/preact';
import { useEffect } from 'preact/hooks';
import type { CameraView, DeviceView, MalformedView, ResultView } from '../../dashboard/protocol.ts';
import { ago, duration, mb, num, pct, time } from '../fmt.ts';
import { cameraHref, markPainted, useStore } from '../store.ts';

function Status({ d }: { d: DeviceView }) {
  const [cls, text] = d.online === null ? ['unknown', 'never seen'] : d.online ? ['online', 'online'] : ['offline', d.statusReason === 'closed' ? 'offline (stopped)' : 'offline (lost)'];
  return html`<span class=${`dot ${cls}`} title=${d.statusTs ? `since ${time(d.statusTs)}` : ''}></span><span data-testid="status">${text}</span>`;
}

function Health({ d }: { d: DeviceView }) {
  const h = d.health;
  if (!h) return html`<span class="muted">no health yet</span>`;
  return html`<span title=${`health at ${time(h.ts)}`}>
    infer ${h.inferMs ? `${num(h.inferMs.p50, 1)} / ${num(h.inferMs.p99, 1)} ms` : '–'} · ${h.cpuTempC === null ? 'temp –' : `${num(h.cpuTempC)} °C`} · outbox ${h.outboxDepth} · ${mb(h.rssBytes)} · up ${duration(h.uptimeS)}
  </span>`;
}

function CameraRow({ d, c }: { d: DeviceView; c: CameraView }) {
  const shiftTotal = c.shift.ok + c.shift.ng;
  return html`<tr class="camera" data-testid=${`camera-${d.device}-${c.camera}`}>
    <td class="indent"><a href=${cameraHref(d.device, c.camera)}>${c.camera}</a></td>
    <td><span class=${`state ${c.state ?? 'unknown'}`}>${c.paused ? 'paused' : (c.state ?? '–')}</span>${c.drift?.drifting
      ? html` <a href="#/review" class="badge ng" data-testid="drifting" title=${`score PSI ${c.drift.scorePsi.toFixed(2)}, class PSI ${c.drift.classPsi.toFixed(2)} over ${c.drift.frames} results`}>drift</a>`
      : ''}</td>
    <td>${num(c.fpsIn, 1)} / ${num(c.fpsProcessed, 1)}</td>
    <td>${c.droppedFrames ?? '–'}</td>
    <td>${num(c.threshold, 2)}</td>
    <td class="ok" data-testid="shift-ok">${c.shift.ok}</td>
    <td class="ng" data-testid="shift-ng">${c.shift.ng}</td>
    <td data-testid="shift-yield">${shiftTotal ? pct(c.shift) : '–'}</td>
    <td data-testid="today">${c.today.ok} / ${c.today.ng}</td>
    <td title=${time(c.lastCaptureTs)}>${ago(c.lastCaptureTs)}</td>
    <td class="mono">${c.model ?? '–'}${c.prompt ? html`<br />${c.prompt}` : ''}</td>
  </tr>`;
}

function DeviceRows({ d }: { d: DeviceView }) {
  return html`
    <tr class="device" data-testid=${`device-${d.device}`}>
      <td><b>${d.device}</b></td>
      <td colspan="2"><${Status} d=${d} /></td>
      <td colspan="3"><span class="muted">model</span> <span class="mono">${d.model ?? '–'}</span> <span class="muted">on</span> ${d.ep ?? '–'}</td>
      <td colspan="3"><${Health} d=${d} /></td>
      <td title=${time(d.lastResultTs)}>${ago(d.lastResultTs)}</td>
      <td data-testid="gaps" class=${d.missing > 0 ? 'ng' : ''}>${d.missing > 0 ? `${d.missing} missing` : 'no gaps'}${d.epochs > 1 ? ` · ${d.epochs} sequences` : ''}</td>
    </tr>
    ${d.lastEvent ? html`<tr class="event"><td></td><td colspan="10" class="muted">last event ${time(d.lastEvent.ts)}: ${d.lastEvent.text}</td></tr>` : ''}
    ${d.deploy ? html`<tr class="event" data-testid="deploy"><td></td><td colspan="10" class="muted">installed ${d.deploy.installed ?? '–'}${d.deploy.rollout
      ? html` · deployment ${d.deploy.rollout}: ${d.deploy.artifact} <b class=${d.deploy.state === 'rejected' || d.deploy.state === 'rolled-back' ? 'ng' : ''}>${d.deploy.state}</b> since ${time(d.deploy.since)}${d.deploy.reason ? ` (${d.deploy.reason})` : ''}`
      : ''}</td></tr>` : ''}
    ${d.cameras.map((c) => html`<${CameraRow} d=${d} c=${c} />`)}
  `;
}

export function Ticker({ results, testid }: { results: ResultView[]; testid: string }) {
  return html`<table class="ticker" data-testid=${testid}>
    <thead><tr><th>captured</th><th>camera</th><th>seq</th><th>frame</th><th>label</th><th>score</th><th>decision</th><th>latency</th></tr></thead>
    <tbody>
      ${results.map(
        (r) => html`<tr key=${`${r.device}/${r.seqEpoch}/${r.seq}`}>
          <td>${time(r.captureTs)}</td><td>${r.device}/${r.camera}</td><td>${r.seq}</td><td>${r.frameId}</td><td>${r.label}</td>
          <td>${r.score.toFixed(3)}</td><td class=${r.decision === 'OK' ? 'ok' : 'ng'}>${r.decision}</td><td>${num(r.totalMs, 1)} ms</td>
        </tr>`,
      )}
    </tbody>
  </table>`;
}

function Malformed({ rows }: { rows: MalformedView[] }) {
  if (rows.length === 0) return null;
  return html`<section>
    <h2>Malformed messages <span class="badge ng" data-testid="malformed-total">${rows.reduce((s, r) => s + r.count, 0)}</span></h2>
    <p class="muted">Messages on the broker that were not JSON or failed their schema: counted here, never stored as data.</p>
    <table data-testid="malformed">
      <thead><tr><th>device</th><th>kind</th><th>code</th><th>count</th><th>last</th><th>last topic and problem</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr><td>${r.device || '–'}</td><td>${r.kind}</td><td>${r.code}</td><td>${r.count}</td><td>${time(r.lastTs)}</td><td class="mono small">${r.lastTopic}<br />${r.lastMessage}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

/** The fleet's newest results; its effect runs after the paint that showed them. */
function LiveTicker() {
  const ticker = useStore((s) => s.ticker);
  useEffect(() => markPainted(), [ticker]);
  return html`<${Ticker} results=${ticker} testid="ticker" />`;
}

export function FleetPage() {
  const f = useStore((s) => s.fleet);
  if (!f) return html`<p class="muted">waiting for the server…</p>`;
  const online = f.devices.filter((d) => d.online).length;
  const totals = f.devices.flatMap((d) => d.cameras).reduce((a, c) => ({ ok: a.ok + c.today.ok, ng: a.ng + c.today.ng }), { ok: 0, ng: 0 });
  const shiftTotals = f.devices.flatMap((d) => d.cameras).reduce((a, c) => ({ ok: a.ok + c.shift.ok, ng: a.ng + c.shift.ng }), { ok: 0, ng: 0 });
  return html`
    <section class="cards">
      <div class="card"><div class="big" data-testid="devices-online">${online} / ${f.devices.length}</div>devices online</div>
      <div class="card"><div class="big">${shiftTotals.ok + shiftTotals.ng}</div>results this shift${f.shift ? ` (${f.shift.name}, from ${time(f.shift.start)})` : ''}</div>
      <div class="card"><div class="big" data-testid="shift-yield-all">${pct(shiftTotals)}</div>yield this shift</div>
      <div class="card"><div class="big">${pct(totals)}</div>yield today (${totals.ok + totals.ng})</div>
      <div class="card"><div class=${`big ${f.malformed.length ? 'ng' : ''}`}>${f.malformed.reduce((a, r) => a + r.count, 0)}</div>malformed messages</div>
    </section>
    <section>
      <h2>Devices and cameras</h2>
      <table class="fleet" data-testid="fleet">
        <thead><tr><th>device / camera</th><th>state</th><th>fps in / out</th><th>dropped</th><th>threshold</th><th>OK</th><th>NG</th><th>yield</th><th>today OK / NG</th><th>last result</th><th>model / prompt · gaps</th></tr></thead>
        <tbody>${f.devices.map((d) => html`<${DeviceRows} d=${d} />`)}</tbody>
      </table>
      ${f.devices.length === 0 ? html`<p class="muted">No device has reported yet.</p>` : ''}
    </section>
    <section>
      <h2>Latest results</h2>
      <${LiveTicker} />
    </section>
    <${Malformed} rows=${f.malformed} />
  `;
}
