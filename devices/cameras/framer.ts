// Cuts a decoder's raw byte stream (stdout pipe) into whole frames.
// Pipe chunks are ≤ 64 KiB, so a frame usually spans several chunks. Each byte is copied at most
// once: a frame lying wholly inside one chunk is handed out as a view of that chunk (no copy);
// a frame spanning chunks is assembled in its own buffer. Pipe chunks are never reused by Node,
// so views stay valid for as long as a consumer holds them.

export class RawFramer {
  private pending: Buffer | null = null;
  private filled = 0;

  constructor(readonly frameBytes: number) {
    if (!Number.isInteger(frameBytes) || frameBytes <= 0) throw new RangeError(`frameBytes must be a positive integer, got ${frameBytes}`);
  }

  /** Feeds one chunk; calls `emit` for every frame it completes, in order. */
  push(chunk: Uint8Array, emit: (frame: Uint8Array) => void): void {
    const fb = this.frameBytes;
    let off = 0;
    if (this.pending !== null) {
      const n = Math.min(chunk.length, fb - this.filled);
      this.pending.set(chunk.subarray(0, n), this.filled);
      this.filled += n;
      off = n;
      if (this.filled < fb) return;
      const done = this.pending;
      this.pending = null;
      this.filled = 0;
      emit(done);
    }
    while (chunk.length - off >= fb) {
      emit(chunk.subarray(off, off + fb));
      off += fb;
    }
    if (off < chunk.length) {
      // allocUnsafeSlow: a frame owns its ArrayBuffer (not the shared 8 KiB pool), so consumers
      // may transfer it to a worker or wrap it in a tensor without surprises.
      this.pending = Buffer.allocUnsafeSlow(fb);
      this.pending.set(chunk.subarray(off), 0);
      this.filled = chunk.length - off;
    }
  }

  /** Bytes of an incomplete frame waiting for the rest. */
  get partialBytes(): number {
    return this.filled;
  }

  reset(): void {
    this.pending = null;
    this.filled = 0;
  }
}
