// The page's state: what the server last sent, the route, the connection. One WebSocket to /ws;
// components re-render when the part they show changes (useStore). The page records, for the
// benchmark and anyone curious, how long after publishing each result became visible (window.edgeprompt).

import { useEffect, useRef, useState } from 'preact/hooks';
import type { ClientMessage, ResultView, ServerMessage } from '../dashboard/protocol.ts';

type Msg<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

export type Route = { page: 'fleet' } | { page: 'actions' } | { page: 'review' } | { page: 'camera'; device: string; camera: string } | { page: 'login' };

export interface State {
  route: Route;
  connected: boolean;
  hello: Msg<'hello'> | null;
  fleet: Msg<'fleet'> | null;
  /** Newest first, every camera (fleet page). */
  ticker: ResultView[];
  camera: { device: string; camera: string; summary: Msg<'camera'> | null; results: ResultView[] } | null;
  /** Results received but not yet painted (their latency is taken after the paint). */
  unpainted: ResultView[];
}

const TICKER = 15;
const CAMERA_RESULTS = 1000;

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'camera' && parts[1] && parts[2]) return { page: 'camera', device: parts[1], camera: parts[2] };
  if (parts[0] === 'actions') return { page: 'actions' };
  if (parts[0] === 'review') return { page: 'review' };
  return { page: 'fleet' };
}

export const cameraHref = (device: string, camera: string) => `#/camera/${encodeURIComponent(device)}/${encodeURIComponent(camera)}`;

let state: State = { route: parseRoute(location.hash), connected: false, hello: null, fleet: null, ticker: [], camera: null, unpainted: [] };
const listeners = new Set<() => void>();
const set = (patch: Partial<State>) => {
  state = { ...state, ...patch };
  for (const l of listeners) l();
};

/**
 * The part of the state a component shows; it re-renders only when that part changes (by
 * reference), so a burst of results re-renders the ticker, not the whole page.
 */
export function useStore<T>(select: (s: State) => T): T {
  const [, force] = useState(0);
  const value = select(state);
  // What this component last rendered; the listener compares against it, so a change that lands
  // between a render and the effect below still re-renders.
  const shown = useRef(value);
  shown.current = value;
  useEffect(() => {
    const l = () => {
      if (!Object.is(select(state), shown.current)) force((n) => n + 1);
    };
    listeners.add(l);
    l();
    return () => void listeners.delete(l);
  }, []);
  return value;
}

// ---------------------------------------------------------------- visibility latency (ms)
const visible: number[] = [];
(window as unknown as { edgeprompt: object }).edgeprompt = {
  /** Date.now() - publishTs of each result at its first paint, in arrival order (last 20 000). */
  visibleLatencyMs: visible,
};

/** Called after a paint that showed the unpainted results. */
export function markPainted(): void {
  if (state.unpainted.length === 0) return;
  const now = Date.now();
  for (const r of state.unpainted) visible.push(now - r.publishTs);
  if (visible.length > 20_000) visible.splice(0, visible.length - 20_000);
  state = { ...state, unpainted: [] };
}

// ---------------------------------------------------------------- connection
let ws: WebSocket | null = null;
let retry: ReturnType<typeof setTimeout> | null = null;

function viewMessage(r: Route): ClientMessage | null {
  if (r.page === 'camera') return { type: 'view', view: 'camera', device: r.device, camera: r.camera };
  if (r.page === 'fleet' || r.page === 'actions' || r.page === 'review') return { type: 'view', view: r.page };
  return null;
}

function onMessage(m: ServerMessage): void {
  switch (m.type) {
    case 'hello':
      return set({ hello: m });
    case 'fleet':
      return set({ fleet: m });
    case 'results': {
      // Only pages that show results paint them (and note when); elsewhere nothing waits for a paint.
      const shows = state.route.page === 'fleet' || state.route.page === 'camera';
      const patch: Partial<State> = { unpainted: shows ? [...state.unpainted, ...m.results].slice(-5000) : [] };
      const c = state.camera;
      if (state.route.page === 'camera' && c) patch.camera = { ...c, results: [...m.results, ...c.results].slice(0, CAMERA_RESULTS) };
      else patch.ticker = [...m.results, ...state.ticker].slice(0, TICKER);
      return set(patch);
    }
    case 'camera-history':
      if (!state.camera || state.camera.device !== m.device || state.camera.camera !== m.camera) return;
      return set({ camera: { ...state.camera, results: m.results } });
    case 'camera':
      if (!state.camera || state.camera.device !== m.device || state.camera.camera !== m.camera) return;
      return set({ camera: { ...state.camera, summary: m } });
  }
}

export function connect(): void {
  if (ws) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const sock = new WebSocket(url);
  ws = sock;
  sock.onopen = () => {
    set({ connected: true });
    const v = viewMessage(state.route);
    if (v) sock.send(JSON.stringify(v));
  };
  sock.onmessage = (e) => onMessage(JSON.parse(String(e.data)) as ServerMessage);
  sock.onclose = () => {
    ws = null;
    set({ connected: false });
    // Signed out (or the server restarted and forgot the session)? Ask before reconnecting.
    void fetch('/api/me').then((r) => {
      if (r.status === 401) set({ route: { page: 'login' } });
      else retry = setTimeout(connect, 1000);
    }, () => (retry = setTimeout(connect, 1000)));
  };
}

export function disconnect(): void {
  if (retry) clearTimeout(retry);
  ws?.close();
  ws = null;
}

export function navigate(route: Route): void {
  const camera = route.page === 'camera' ? { device: route.device, camera: route.camera, summary: null, results: [] } : null;
  set({ route, camera, unpainted: [] });
  const v = viewMessage(route);
  if (v && ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify(v));
}

window.addEventListener('hashchange', () => {
  if (state.route.page !== 'login') navigate(parseRoute(location.hash));
});

export async function api<T>(path: string, body?: unknown): Promise<{ status: number; data: T }> {
  const r = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const data = (r.headers.get('content-type') ?? '').includes('json') ? ((await r.json()) as T) : (null as T);
  return { status: r.status, data };
}
