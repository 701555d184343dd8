// `edgeprompt watch`: live results (one line each, gaps and redeliveries flagged) and a per-device
// health table, from the subscriber client (runtime/mqtt/client.ts). Output goes through `write`
// so tests (and other front ends) can capture it.

import { subscribeHealth, subscribeResults, subscribeStatus, type ResultMessage, type Subscription } from './mqtt/client.ts';
import type { HealthPayload, StatusPayload } from './schema/payloads.ts';

export interface WatchOptions {
  url: string;
  device?: string;
  camera?: string;
  /** A fixed client id gives a persistent session: results published while away arrive later. */
  clientId?: string;
  protocolVersion?: 4 | 5;
  username?: string;
  password?: string;
  /** Raw JSON lines instead of the human view. */
  json?: boolean;
  /** No per-result lines (the table only). */
  quiet?: boolean;
  /** The health table at most this often (ms). Default 5000; 0 = never. */
  tableEveryMs?: number;
  /** Stop after this many results. */
  count?: number;
  write?: (text: string) => void;
}

export interface Watch {
  ready: Promise<void>;
  /** Resolves when `count` results were seen, or after close(). */
  done: Promise<void>;
  results: number;
  close(): Promise<void>;
}

const time = (ts: number) => new Date(ts).toISOString().slice(11, 23);
const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

export function formatResult(m: ResultMessage): string {
  const r = m.result;
  const flags = [m.gap ? `GAP seq ${m.gap.from}..${m.gap.to} missing` : '', m.duplicate ? 'redelivered' : '', m.reset ? 'sequence restarted' : ''].filter(Boolean);
  return [
    time(r.captureTs),
    pad(`${r.device}/${r.camera}`, 20),
    pad(`#${r.seq}`, 7),
    pad(`frame ${r.frameId}`, 12),
    r.triggerId ? pad(`trig ${r.triggerId}`, 14) : '',
    pad(r.label, 16),
    r.score.toFixed(3),
    r.decision === 'OK' ? 'OK' : 'NG',
    r.okScore === undefined ? '' : `p(ok) ${r.okScore.toFixed(3)}`, // inspection models
    `infer ${r.latency.inferMs.toFixed(1)}ms`,
    `total ${r.latency.totalMs.toFixed(1)}ms`,
    ...flags,
  ]
    .filter(Boolean)
    .join('  ');
}

/** Plain-text table: header, rule, rows; columns as wide as their widest cell. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => pad(c, widths[i]!)).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function healthTable(health: ReadonlyMap<string, HealthPayload>, status: ReadonlyMap<string, StatusPayload>): string {
  const rows: string[][] = [];
  for (const [device, h] of [...health].sort(([a], [b]) => a.localeCompare(b))) {
    const s = status.get(device);
    const common = [
      device,
      s ? s.state : '?',
      h.model ? `${h.model.name}@${h.model.version}` : '-',
      h.ep ?? '-',
      h.inferMs ? `${h.inferMs.p50.toFixed(1)}/${h.inferMs.p99.toFixed(1)}` : '-',
      `${h.mqtt.outboxDepth}`,
      `${Math.round(h.rssBytes / 2 ** 20)}`,
      h.cpuTempC === null ? '-' : h.cpuTempC.toFixed(0),
      `${Math.round(h.uptimeS)}`,
    ];
    const cams = Object.entries(h.cameras);
    if (cams.length === 0) rows.push([...common, '-', '-', '-', '-', '-']);
    for (const [i, [cam, c]] of cams.entries()) {
      const head = i === 0 ? common : common.map(() => '');
      rows.push([...head, cam, c.state, c.fpsIn.toFixed(1), c.fpsProcessed.toFixed(1), String(c.droppedFrames)]);
    }
  }
  return formatTable(['device', 'status', 'model', 'ep', 'infer p50/p99 ms', 'outbox', 'rss MB', 'temp C', 'up s', 'camera', 'state', 'fps in', 'fps out', 'dropped'], rows);
}

export function startWatch(o: WatchOptions): Watch {
  const write = o.write ?? ((s: string) => void process.stdout.write(s + '\n'));
  const conn = {
    url: o.url,
    protocolVersion: o.protocolVersion ?? 5,
    ...(o.username !== undefined && { username: o.username }),
    ...(o.password !== undefined && { password: o.password }),
    onError: (e: Error) => {
      if (closing) return; // mqtt.js reports an ack it could not send any more while ending: not news
      const code = (e as { code?: string }).code ?? 'ERROR';
      write(o.json ? JSON.stringify({ kind: 'error', code, message: e.message }) : `! ${code}: ${e.message}`);
    },
  };
  let closing = false;
  const health = new Map<string, HealthPayload>();
  const status = new Map<string, StatusPayload>();
  let dirty = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const w: Watch = { ready: Promise.resolve(), done, results: 0, close };
  const subs: Subscription[] = [];
  subs.push(
    subscribeResults({ ...conn, ...(o.device && { device: o.device }), ...(o.camera && { camera: o.camera }), ...(o.clientId && { clientId: o.clientId }) }, (m) => {
      w.results++;
      if (o.json) write(JSON.stringify({ kind: 'result', duplicate: m.duplicate, gap: m.gap ?? null, ...m.result }));
      else if (!o.quiet) write(formatResult(m));
      if (o.count !== undefined && w.results >= o.count) resolveDone();
    }),
  );
  subs.push(
    subscribeHealth({ ...conn, ...(o.device && { device: o.device }) }, (h) => {
      health.set(h.device, h);
      dirty = true;
      if (o.json) write(JSON.stringify({ kind: 'health', ...h }));
    }),
  );
  subs.push(
    subscribeStatus({ ...conn, ...(o.device && { device: o.device }) }, (s) => {
      const changed = status.get(s.device)?.state !== s.state;
      status.set(s.device, s);
      if (o.json) write(JSON.stringify({ kind: 'status', ...s }));
      else if (changed) write(`${time(s.ts)}  ${s.device} is ${s.state} (${s.reason})`);
    }),
  );
  w.ready = Promise.all(subs.map((s) => s.ready)).then(() => undefined);
  const every = o.tableEveryMs ?? 5000;
  const timer =
    every > 0 && !o.json
      ? setInterval(() => {
          if (!dirty) return;
          dirty = false;
          write(healthTable(health, status));
        }, every)
      : null;

  async function close(): Promise<void> {
    closing = true;
    if (timer) clearInterval(timer);
    await Promise.all(subs.map((s) => s.close()));
    resolveDone();
  }
  return w;
}
