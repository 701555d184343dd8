// Actions: set a camera's (or the device default) OK/NG threshold, pause and resume cameras. Each
// command goes to the device over MQTT; its reply is shown as it came, and a refused command
// shows the device's error code. Operators only: a viewer sees the controls disabled.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import type { ActionView, CommandRequestBody, DeviceView } from '../../dashboard/protocol.ts';
import { num, time } from '../fmt.ts';
import { api, useStore } from '../store.ts';

interface Reply {
  ok: boolean;
  code?: string;
  message?: string;
  data?: unknown;
}

function ReplyBox({ r }: { r: (Reply & { command: string; at: number }) | null }) {
  if (!r) return null;
  return html`<div class=${`reply ${r.ok ? 'ok-border' : 'ng-border'}`} data-testid="reply">
    <b>${r.command}</b> at ${time(r.at)}: ${r.ok ? html`<span class="ok" data-testid="reply-ok">OK</span>` : html`<span class="ng" data-testid="reply-code">${r.code}</span> ${r.message}`}
    ${r.ok && r.data !== undefined ? html`<pre class="small">${JSON.stringify(r.data, null, 1)}</pre>` : ''}
  </div>`;
}

function DeviceActions({ d, canAct, onDone }: { d: DeviceView; canAct: boolean; onDone: () => void }) {
  const [camera, setCamera] = useState<string>('');
  const [threshold, setThreshold] = useState<string>('');
  const [reply, setReply] = useState<(Reply & { command: string; at: number }) | null>(null);
  const [busy, setBusy] = useState(false);
  const send = async (command: CommandRequestBody['command'], args: Record<string, unknown>) => {
    setBusy(true);
    try {
      const { status, data } = await api<Reply>('/api/command', { device: d.device, command, args } satisfies CommandRequestBody);
      setReply({ command, at: Date.now(), ...(status === 200 ? data : { ok: false, code: data?.code ?? String(status), message: data?.message ?? '' }) });
      onDone();
    } finally {
      setBusy(false);
    }
  };
  const current = camera ? (d.thresholds?.cameras[camera] ?? d.thresholds?.default) : d.thresholds?.default;
  const disabled = !canAct || busy;
  return html`<section class="device-actions" data-testid=${`actions-${d.device}`}>
    <h3>${d.device} <span class="muted small">${d.online ? 'online' : 'offline'} · default threshold ${num(d.thresholds?.default, 2)}</span></h3>
    <form class="row" onSubmit=${(e: Event) => (e.preventDefault(), void send('set-threshold', { threshold: Number(threshold), ...(camera && { camera }) }))}>
      <label>camera <select data-testid="threshold-camera" value=${camera} onChange=${(e: Event) => setCamera((e.target as HTMLSelectElement).value)}>
        <option value="">(device default)</option>
        ${d.cameras.map((c) => html`<option value=${c.camera}>${c.camera}</option>`)}
      </select></label>
      <label>threshold <input data-testid="threshold-input" type="number" min="0" max="1" step="0.01" required placeholder=${num(current, 2)} value=${threshold} onInput=${(e: Event) => setThreshold((e.target as HTMLInputElement).value)} /></label>
      <button data-testid="threshold-set" disabled=${disabled}>Set threshold</button>
    </form>
    <table><thead><tr><th>camera</th><th>threshold</th><th>state</th><th></th></tr></thead><tbody>
      ${d.cameras.map(
        (c) => html`<tr data-testid=${`action-row-${c.camera}`}><td>${c.camera}</td><td>${num(c.threshold, 2)}</td><td>${c.paused ? 'paused' : (c.state ?? '–')}</td>
          <td>${c.paused
            ? html`<button data-testid="resume" disabled=${disabled} onClick=${() => void send('resume', { camera: c.camera })}>Resume</button>`
            : html`<button data-testid="pause" disabled=${disabled} onClick=${() => void send('pause', { camera: c.camera })}>Pause</button>`}</td></tr>`,
      )}
    </tbody></table>
    <${ReplyBox} r=${reply} />
  </section>`;
}

export function ActionsPage() {
  const devices = useStore((s) => s.fleet?.devices);
  const hello = useStore((s) => s.hello);
  const [log, setLog] = useState<ActionView[]>([]);
  const refresh = () => void api<ActionView[]>('/api/actions').then((r) => r.status === 200 && setLog(r.data));
  useEffect(refresh, []);
  const canAct = hello?.user.role === 'operator';
  return html`
    ${canAct ? '' : html`<p class="notice" data-testid="read-only">Signed in as a viewer: commands need the operator role.</p>`}
    ${(devices ?? []).map((d) => html`<${DeviceActions} d=${d} canAct=${canAct} onDone=${refresh} />`)}
    <section><h2>Action log</h2>
      <table data-testid="action-log"><thead><tr><th>time</th><th>user</th><th>device</th><th>command</th><th>args</th><th>result</th></tr></thead>
        <tbody>${log.map((a) => html`<tr><td>${time(a.ts)}</td><td>${a.user}</td><td>${a.device}</td><td>${a.command}</td><td class="mono small">${JSON.stringify(a.args)}</td>
          <td class=${a.ok ? 'ok' : 'ng'}>${a.ok ? 'OK' : ((a.reply as { error?: { code?: string } } | null)?.error?.code ?? 'failed')}</td></tr>`)}</tbody>
      </table></section>
  `;
}
