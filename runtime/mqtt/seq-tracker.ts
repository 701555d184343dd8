// Gap and duplicate detection by seq, per device. QoS 1 is at-least-once, so repeats are normal
// (a resend after reconnect or restart); a gap means results were lost (the outbox bound dropped
// them, or the subscriber's session expired). A late arrival that fills a reported gap is neither.

export interface SeqVerdict {
  /** Already seen (by seq) in this epoch. */
  duplicate: boolean;
  /** Seqs skipped just before this one; reported once, when first noticed. */
  gap?: { from: number; to: number };
  /** The device's seqEpoch changed: its sequence started again (a new outbox directory). */
  reset: boolean;
}

interface DeviceSeq {
  epoch: string;
  max: number;
  missing: [number, number][]; // inclusive ranges, oldest first
}

export class SeqTracker {
  private readonly devices = new Map<string, DeviceSeq>();

  /** @param maxMissingRanges older unfilled gaps are forgotten beyond this many per device */
  constructor(private readonly maxMissingRanges = 1000) {}

  see(device: string, epoch: string, seq: number): SeqVerdict {
    const d = this.devices.get(device);
    if (!d || d.epoch !== epoch) {
      // First sight: we cannot know what came before. A new epoch starts at 0, so anything before is lost.
      const reset = d !== undefined;
      this.devices.set(device, { epoch, max: seq, missing: [] });
      if (reset && seq > 0) {
        this.devices.get(device)!.missing.push([0, seq - 1]);
        return { duplicate: false, gap: { from: 0, to: seq - 1 }, reset };
      }
      return { duplicate: false, reset };
    }
    if (seq === d.max + 1) {
      d.max = seq;
      return { duplicate: false, reset: false };
    }
    if (seq > d.max + 1) {
      const gap = { from: d.max + 1, to: seq - 1 };
      d.missing.push([gap.from, gap.to]);
      if (d.missing.length > this.maxMissingRanges) d.missing.shift();
      d.max = seq;
      return { duplicate: false, gap, reset: false };
    }
    return { duplicate: !fill(d.missing, seq), reset: false };
  }

  /** Seqs not yet received inside gaps seen so far, per device (for summaries). */
  missing(device: string): { from: number; to: number }[] {
    return (this.devices.get(device)?.missing ?? []).map(([from, to]) => ({ from, to }));
  }
}

/** Removes seq from the missing ranges; false when it was not missing (a duplicate). */
function fill(missing: [number, number][], seq: number): boolean {
  const i = missing.findIndex(([a, b]) => seq >= a && seq <= b);
  if (i < 0) return false;
  const [a, b] = missing[i]!;
  const parts: [number, number][] = [];
  if (a <= seq - 1) parts.push([a, seq - 1]);
  if (seq + 1 <= b) parts.push([seq + 1, b]);
  missing.splice(i, 1, ...parts);
  return true;
}
