// Splits received bytes into lines (CR, LF or CRLF), shared by every SerialLink so framing is
// identical for real ports and the test double.

export class LineFramer {
  private buf = '';
  private discarding = false; // inside an over-long line: drop until its terminator

  constructor(
    private readonly maxLineLength = 256,
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: (dropped: number) => void,
  ) {}

  push(chunk: Uint8Array): void {
    const text = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.take(text.slice(start, i), true);
      start = i + 1;
    }
    this.take(text.slice(start), false);
  }

  private take(part: string, ended: boolean): void {
    if (!this.discarding) this.buf += part;
    if (!this.discarding && this.buf.length > this.maxLineLength) {
      this.onOverflow(this.buf.length);
      this.discarding = true;
      this.buf = '';
    }
    if (!ended) return;
    if (!this.discarding && this.buf !== '') this.onLine(this.buf);
    this.buf = '';
    this.discarding = false;
  }

  reset(): void {
    this.buf = '';
    this.discarding = false;
  }
}
