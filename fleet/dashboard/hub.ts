// The WebSocket side: one connection per open page, each looking at one view (fleet, actions, or
// a camera). New results go out as soon as a batch is stored (at most one push every
// `resultsEveryMs`): the fleet ticker gets the newest `fleetResults`, a camera page all of its
// camera's. Every `tickMs` the hub also sends what else changed: the fleet (devices, cameras,
// counts; at most every `fleetEveryMs`) and a camera's counts and yields.
// A slow page is skipped while its socket has a backlog, never allowed to grow the server's memory.

import { z } from 'zod';
import type { Log } from '../../runtime/log.ts';
import { CameraId, DeviceId } from '../../runtime/schema/payloads.ts';
import type { StoredBatch } from '../record/batcher.ts';
import type { Queryable } from '../record/db.ts';
import { recentResults, type StoredResult } from '../record/queries.ts';
import type { RecorderStats } from '../record/recorder.ts';
import { camKey, resultView, type LiveModel } from './model.ts';
import type { ClientMessage, ResultView, Role, ServerMessage } from './protocol.ts';
import { currentShift } from './shifts.ts';

export interface Socket {
  send(data: string): void;
  readonly bufferedAmount: number;
  readonly readyState: number;
  close(code?: number, reason?: string): void;
}

interface Client {
  socket: Socket;
  view: ClientMessage & { type: 'view' };
  user: { name: string; role: Role };
  lastCamera: number;
}

const ClientMessageSchema = z.discriminatedUnion('view', [
  z.strictObject({ type: z.literal('view'), view: z.enum(['fleet', 'actions', 'review']) }),
  z.strictObject({ type: z.literal('view'), view: z.literal('camera'), device: DeviceId, camera: CameraId }),
]);

export interface HubOptions {
  tickMs: number;
  resultsEveryMs: number;
  fleetEveryMs: number;
  fleetResults: number;
  history: number;
}

const MAX_BACKLOG = 4 << 20; // bytes a page may have unsent before it misses updates

// A stored result is the page's view plus when the recorder received it, which the page does not show.
const storedView = ({ receivedTs: _received, ...view }: StoredResult): ResultView => view;

export class Hub {
  private clients = new Set<Client>();
  private pending: ResultView[] = [];
  /** The newest results this process stored, newest first: what a fleet page opened now shows. */
  private recent: ResultView[] = [];
  private timer: NodeJS.Timeout;
  private resultsTimer: NodeJS.Timeout | null = null;
  private lastResults = 0;
  private fleetVersion = -1;
  private lastFleet = 0;

  constructor(
    private readonly model: LiveModel,
    private readonly db: Queryable,
    private readonly recorderStats: () => RecorderStats | null,
    private readonly hello: (user: Client['user']) => ServerMessage,
    private readonly log: Log,
    private readonly opts: HubOptions = { tickMs: 100, resultsEveryMs: 25, fleetEveryMs: 500, fleetResults: 50, history: 1000 },
  ) {
    this.timer = setInterval(() => this.tick(), opts.tickMs);
    this.timer.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** A batch the built-in recorder stored. */
  stored(b: StoredBatch): void {
    this.model.apply(b);
    if (b.results.length === 0) return;
    for (const r of b.results) this.pending.push(resultView(r));
    this.resultsTimer ??= setTimeout(() => this.pushResults(), Math.max(0, this.lastResults + this.opts.resultsEveryMs - Date.now()));
  }

  attach(socket: Socket, user: Client['user']): { message(data: string): void; close(): void } {
    const c: Client = { socket, user, view: { type: 'view', view: 'fleet' }, lastCamera: 0 };
    this.clients.add(c);
    this.send(c, this.hello(user));
    this.send(c, this.fleet());
    if (this.recent.length > 0) this.send(c, { type: 'results', results: this.recent, skipped: 0 });
    return {
      message: (data) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(data);
        } catch {
          return; // not ours to answer: the page only sends JSON
        }
        const r = ClientMessageSchema.safeParse(parsed);
        if (!r.success) return;
        c.view = r.data;
        if (r.data.view === 'camera') void this.openCamera(c, r.data.device, r.data.camera);
        else if (this.recent.length > 0) this.send(c, { type: 'results', results: this.recent, skipped: 0 });
      },
      close: () => void this.clients.delete(c),
    };
  }

  private async openCamera(c: Client, device: string, camera: string): Promise<void> {
    this.sendCamera(c, device, camera);
    try {
      const rows = await recentResults(this.db, device, camera, this.opts.history);
      // The page may have moved on meanwhile.
      if (c.view.view === 'camera' && c.view.device === device && c.view.camera === camera) {
        this.send(c, { type: 'camera-history', device, camera, results: rows.map(storedView) });
      }
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'dashboard: reading recent results failed');
    }
  }

  private sendCamera(c: Client, device: string, camera: string): void {
    c.lastCamera = Date.now();
    this.send(c, { type: 'camera', device, camera, ts: Date.now(), ...this.model.camera(device, camera) });
  }

  fleet(): ServerMessage {
    const s = this.recorderStats();
    const now = Date.now();
    return {
      type: 'fleet',
      ts: now,
      devices: this.model.devices(now),
      malformed: this.model.malformed(),
      shift: currentShift(this.model.shifts, now),
      recorder: s
        ? { connected: s.connected, received: s.received, stored: s.stored, duplicates: s.duplicates, malformed: s.malformed, pendingAcks: s.pendingAcks, db: `${s.db.kind} ${s.db.where}`, lastError: s.lastError }
        : { connected: false, received: 0, stored: 0, duplicates: 0, malformed: 0, pendingAcks: 0, db: 'none', lastError: null },
    };
  }

  private send(c: Client, m: ServerMessage): void {
    if (c.socket.readyState !== 1) return;
    c.socket.send(JSON.stringify(m));
  }

  private pushResults(): void {
    this.resultsTimer = null;
    this.lastResults = Date.now();
    const results = this.pending.sort((a, b) => b.captureTs - a.captureTs || b.seq - a.seq);
    this.pending = [];
    if (results.length === 0) return;
    this.recent = [...results.slice(0, this.opts.fleetResults), ...this.recent].slice(0, this.opts.fleetResults);
    for (const c of this.clients) {
      if (c.socket.readyState !== 1 || c.socket.bufferedAmount > MAX_BACKLOG) continue; // a stalled page misses these
      if (c.view.view === 'camera') {
        const { device, camera } = c.view;
        const mine = results.filter((r) => r.device === device && r.camera === camera);
        if (mine.length > 0) this.send(c, { type: 'results', results: mine.slice(0, this.opts.history), skipped: Math.max(0, mine.length - this.opts.history) });
      } else {
        this.send(c, { type: 'results', results: results.slice(0, this.opts.fleetResults), skipped: Math.max(0, results.length - this.opts.fleetResults) });
      }
    }
  }

  private tick(): void {
    const now = Date.now();
    const sendFleet = this.model.version !== this.fleetVersion && now - this.lastFleet >= this.opts.fleetEveryMs;
    const fleet = sendFleet ? this.fleet() : null;
    if (sendFleet) {
      this.fleetVersion = this.model.version;
      this.lastFleet = now;
    }
    const changed = this.model.takeChangedCameras();
    for (const c of this.clients) {
      if (c.socket.readyState !== 1) continue;
      if (c.socket.bufferedAmount > MAX_BACKLOG) continue; // a stalled page misses this tick
      if (fleet) this.send(c, fleet);
      if (c.view.view !== 'camera') continue;
      const key = camKey(c.view.device, c.view.camera);
      if (!changed.has(key)) continue;
      if (now - c.lastCamera >= this.opts.fleetEveryMs) this.sendCamera(c, c.view.device, c.view.camera);
      else this.model.markCameraChanged(key); // again next tick
    }
  }

  close(): void {
    clearInterval(this.timer);
    if (this.resultsTimer) clearTimeout(this.resultsTimer);
    for (const c of this.clients) c.socket.close(1001, 'server stopping');
    this.clients.clear();
  }
}
