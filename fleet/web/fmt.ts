// Small formatting helpers shared by the pages.

import type { Counts } from '../dashboard/protocol.ts';

export const pct = (c: Counts) => (c.ok + c.ng === 0 ? '–' : `${((100 * c.ok) / (c.ok + c.ng)).toFixed(1)} %`);

export const num = (n: number | null | undefined, digits = 0) => (n === null || n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits));

export const time = (ms: number | null | undefined) => (ms ? new Date(ms).toLocaleTimeString([], { hour12: false }) : '–');

export const dateTime = (ms: number) => new Date(ms).toLocaleString([], { hour12: false, month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

/** "3 s ago", "5 min ago"; '–' for never. */
export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (!ms) return '–';
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} d ago`;
}

export const mb = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MB`;

export function duration(s: number): string {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}
