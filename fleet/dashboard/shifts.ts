// Shifts and the time windows the dashboard counts over, in the server's local time zone (the
// line's: set TZ for another). Counts are kept per 15-minute bucket of capture time
// (edgeprompt.camera_counts), so shift boundaries must fall on quarter hours. Windows are
// computed from local calendar dates, so a day with a DST change has 23 or 25 hours.

import type { Counts, ShiftDef, ShiftWindow } from './protocol.ts';

export const BUCKET_MS = 15 * 60_000;

export class ShiftError extends Error {
  override readonly name = 'ShiftError';
  readonly code = 'BAD_SHIFTS' as const;
}

export const DEFAULT_SHIFTS = 'A=06:00-14:00,B=14:00-22:00,C=22:00-06:00';

/** `A=06:00-14:00,B=14:00-22:00,C=22:00-06:00` → shift definitions; errors name the part and the fix. */
export function parseShifts(spec: string): ShiftDef[] {
  if (spec.trim() === '' || spec === 'none') return [];
  const shifts = spec.split(',').map((part) => {
    const m = /^\s*([^=,]{1,32})=(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})\s*$/.exec(part);
    if (!m) throw new ShiftError(`--shifts: ${JSON.stringify(part)} is not NAME=HH:MM-HH:MM (e.g. A=06:00-14:00)`);
    const [start, end] = [Number(m[2]) * 60 + Number(m[3]), Number(m[4]) * 60 + Number(m[5])];
    for (const v of [start, end]) {
      if (v > 24 * 60 || v % 15 !== 0) throw new ShiftError(`--shifts: ${JSON.stringify(part)}: times must be quarter hours between 00:00 and 24:00`);
    }
    if (start === end) throw new ShiftError(`--shifts: ${JSON.stringify(part)} is empty (start equals end)`);
    return { name: m[1]!.trim(), start: start % 1440, end: end % 1440 };
  });
  // No minute of the day in two shifts.
  const owner = new Array<string | null>(96).fill(null);
  for (const s of shifts) {
    for (let q = s.start / 15; q !== s.end / 15; q = (q + 1) % 96) {
      if (owner[q]) throw new ShiftError(`--shifts: ${s.name} overlaps ${owner[q]} at ${fmt(q * 15)}`);
      owner[q] = s.name;
    }
  }
  if (new Set(shifts.map((s) => s.name)).size !== shifts.length) throw new ShiftError('--shifts: two shifts have the same name');
  return shifts;
}

const fmt = (min: number) => `${String(Math.floor(min / 60)).padStart(2, '0')}:${String(min % 60).padStart(2, '0')}`;

/** Local midnight of the day containing `ms`, plus `days`. */
export function localMidnight(ms: number, days = 0): number {
  const d = new Date(ms);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + days).getTime();
}

const at = (midnight: number, minutes: number, dayOffset = 0) => {
  const d = new Date(midnight);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + dayOffset, 0, minutes).getTime();
};

/** Every shift instance that overlaps [from, to), oldest first. */
export function shiftWindows(shifts: readonly ShiftDef[], from: number, to: number): ShiftWindow[] {
  const out: ShiftWindow[] = [];
  for (let day = localMidnight(from, -1); day < to; day = localMidnight(day, 1)) {
    for (const s of shifts) {
      const start = at(day, s.start);
      const end = s.end > s.start ? at(day, s.end) : at(day, s.end, 1);
      if (end > from && start < to) out.push({ name: s.name, start, end });
    }
  }
  return out.sort((a, b) => a.start - b.start);
}

export function currentShift(shifts: readonly ShiftDef[], now: number): ShiftWindow | null {
  return shiftWindows(shifts, now, now + 1).find((w) => w.start <= now && now < w.end) ?? null;
}

/** Sums buckets whose start lies in [from, to). */
export function sumBuckets(buckets: ReadonlyMap<number, Counts> | undefined, from: number, to: number): Counts {
  const c = { ok: 0, ng: 0 };
  if (!buckets) return c;
  for (const [b, v] of buckets) {
    if (b >= from && b < to) {
      c.ok += v.ok;
      c.ng += v.ng;
    }
  }
  return c;
}

/** The last 24 local hours (the current one last), each with its counts. */
export function hourly(buckets: ReadonlyMap<number, Counts> | undefined, now: number): (Counts & { start: number })[] {
  const d = new Date(now);
  const hours: (Counts & { start: number })[] = [];
  for (let h = 23; h >= 0; h--) {
    const start = new Date(d.getFullYear(), d.getMonth(), d.getDate(), d.getHours() - h).getTime();
    const end = new Date(d.getFullYear(), d.getMonth(), d.getDate(), d.getHours() - h + 1).getTime();
    hours.push({ start, ...sumBuckets(buckets, start, end) });
  }
  return hours;
}

export const bucketOf = (ms: number) => Math.floor(ms / BUCKET_MS) * BUCKET_MS;
