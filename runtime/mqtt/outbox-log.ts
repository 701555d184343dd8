// The file outbox's on-disk format, and the replay of a log into the entries it holds.
//
//   <dir>/outbox.log    {"t":"h","v":1,"epoch":"…","nextId":N,"dropped":D}   header (first line)
//                       {"t":"p","id":N,"topic":"…","b64":"…"}                put
//                       {"t":"a","id":N}                                      ack (PUBACK received)
//                       {"t":"d","id":N}                                      dropped by the bound
//
// One record per line. A crash can leave the last line cut short (a torn write); replay cuts it off
// with a warning. An unreadable line elsewhere (a bad sector, a hand edit) is skipped with a warning
// naming it, so one damaged record never costs the ones after it.

import type { Log } from '../log.ts';
import type { OutboxEntry } from './outbox.ts';

export const LOG_FILE = 'outbox.log';
export const COMPACT_FILE = 'outbox.log.compact';

type Rec =
  | { t: 'h'; v: 1; epoch: string; nextId: number; dropped: number }
  | { t: 'p'; id: number; topic: string; b64: string }
  | { t: 'a' | 'd'; id: number };

const isId = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

function asRec(x: unknown): Rec | null {
  if (typeof x !== 'object' || x === null) return null;
  const r = x as Record<string, unknown>;
  if (r.t === 'p' && isId(r.id) && typeof r.topic === 'string' && typeof r.b64 === 'string') return r as Rec;
  if ((r.t === 'a' || r.t === 'd') && isId(r.id)) return r as Rec;
  if (r.t === 'h' && r.v === 1 && typeof r.epoch === 'string' && isId(r.nextId) && isId(r.dropped)) return r as Rec;
  return null;
}

export const putLine = (e: OutboxEntry) =>
  JSON.stringify({ t: 'p', id: e.id, topic: e.topic, b64: e.payload.toString('base64') }) + '\n';
export const ackLine = (id: number) => `{"t":"a","id":${id}}\n`;
export const dropLine = (id: number) => `{"t":"d","id":${id}}\n`;
export const headerLine = (h: { epoch: string; nextId: number; dropped: number }) =>
  JSON.stringify({ t: 'h', v: 1, epoch: h.epoch, nextId: h.nextId, dropped: h.dropped }) + '\n';

export interface Replayed {
  /** From the header; null when the log had none (new directory, or a lost header). */
  epoch: string | null;
  /** The first id never used: max(header nextId, highest put id + 1). */
  nextId: number;
  /** Dropped by the bound: the header's count plus every drop record of an entry still held then. */
  dropped: number;
  /** Entries put and neither acked nor dropped, in id order. */
  held: OutboxEntry[];
}

/** Replays the text of outbox.log (`file` names it in warnings). */
export function replayLog(text: string, file: string, log: Pick<Log, 'warn'>): Replayed {
  let end = text.length;
  if (end > 0 && !text.endsWith('\n')) {
    end = text.lastIndexOf('\n') + 1;
    log.warn({ file, bytes: Buffer.byteLength(text.slice(end)) }, 'outbox: torn last line (a write cut short by a crash) skipped');
  }
  const lines = text.slice(0, end).split('\n');
  lines.pop(); // after the final '\n'
  let epoch: string | null = null;
  let nextId = 0;
  let dropped = 0;
  const held = new Map<number, OutboxEntry>();
  lines.forEach((line, i) => {
    let rec: Rec | null = null;
    try {
      rec = asRec(JSON.parse(line));
    } catch {
      rec = null;
    }
    if (rec === null) {
      log.warn({ file, line: i + 1, text: line.slice(0, 80) }, 'outbox: unreadable line skipped');
      return;
    }
    switch (rec.t) {
      case 'h':
        epoch = rec.epoch;
        nextId = Math.max(nextId, rec.nextId);
        dropped = rec.dropped;
        break;
      case 'p':
        held.set(rec.id, { id: rec.id, topic: rec.topic, payload: Buffer.from(rec.b64, 'base64') });
        nextId = Math.max(nextId, rec.id + 1);
        break;
      case 'a':
        held.delete(rec.id);
        break;
      case 'd':
        if (held.delete(rec.id)) dropped++;
        break;
    }
  });
  if (epoch === null && lines.length > 0) log.warn({ file }, 'outbox: header missing; ids continue, with a new epoch');
  return { epoch, nextId, dropped, held: [...held.values()].sort((a, b) => a.id - b.id) };
}
