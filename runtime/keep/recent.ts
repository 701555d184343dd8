// The results a device still holds with their frames, so something that comes after a result (a
// line confirmation naming it, the shadow candidate disagreeing with it) can still keep its frame.
// Per camera a ring of the newest `perCamera` results (the frames' pixels are held while they are
// in it); lookups by frame buffer (the shadow sees only pixels), by seq, and by trigger id (the
// newest result with that id: PLC ids are reused once acknowledged).

import type { Frame } from '../../devices/cameras/frame.ts';
import type { Manifest } from '../artifact/manifest.ts';
import type { KeepReason } from '../schema/keep.ts';
import type { ArtifactRef, ResultInput, ResultPayload } from '../schema/payloads.ts';

export interface Recent {
  camera: string;
  /** Resolves when the result is durable (set by observe()). */
  durable?: Promise<void>;
  frame: Frame;
  input: ResultInput;
  manifest: Manifest;
  /** The camera's minConfidence when it was decided. */
  threshold: number;
  /** The result as published, once it is durable in the outbox (null before). */
  result: ResultPayload | null;
  /** A frame message was spooled for it, or is being made. */
  kept: boolean;
  /** Reasons noted before the result was durable (a fast shadow run). */
  pending: Set<KeepReason>;
  shadow?: { model: ArtifactRef; label: string; decision: 'OK' | 'NG' };
}

export class RecentResults {
  private readonly rings = new Map<string, Recent[]>();
  private readonly byData = new WeakMap<Uint8Array, Recent>();
  private readonly bySeq = new Map<string, Recent>();
  private readonly byTrigger = new Map<string, Recent>();

  constructor(private readonly perCamera: number) {}

  private readonly settle = new WeakMap<Recent, () => void>();

  /** Registers a result as the pipeline produced it (before it is durable); findable by frame and trigger id at once. */
  observe(e: Recent): void {
    e.durable = new Promise((r) => this.settle.set(e, r));
    this.byData.set(e.frame.data, e);
    if (e.input.triggerId !== null && this.perCamera > 0) this.byTrigger.set(triggerKey(e.camera, e.input.triggerId), e);
  }

  /** The result is durable: it joins its camera's ring (and becomes findable by seq and trigger id). */
  accepted(e: Recent, result: ResultPayload): void {
    e.result = result;
    this.settle.get(e)?.();
    if (this.perCamera === 0) return;
    let ring = this.rings.get(e.camera);
    if (!ring) this.rings.set(e.camera, (ring = []));
    ring.push(e);
    this.bySeq.set(seqKey(result.seqEpoch, result.seq), e);
    while (ring.length > this.perCamera) this.evict(ring.shift()!);
  }

  private evict(e: Recent): void {
    const r = e.result!;
    this.bySeq.delete(seqKey(r.seqEpoch, r.seq));
    if (r.triggerId !== null) {
      const k = triggerKey(e.camera, r.triggerId);
      if (this.byTrigger.get(k) === e) this.byTrigger.delete(k);
    }
  }

  findByFrame(data: Uint8Array): Recent | undefined {
    return this.byData.get(data);
  }
  findBySeq(seqEpoch: string, seq: number): Recent | undefined {
    return this.bySeq.get(seqKey(seqEpoch, seq));
  }
  findByTrigger(camera: string, triggerId: string): Recent | undefined {
    return this.byTrigger.get(triggerKey(camera, triggerId));
  }
}

const seqKey = (epoch: string, seq: number) => `${epoch}\u0000${seq}`;
const triggerKey = (camera: string, id: string) => `${camera}\u0000${id}`;
