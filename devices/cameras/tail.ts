// A bounded ring of recent text lines (decoder stderr), kept for crash diagnostics.

export class LineTail {
  private readonly lines: string[] = [];
  private partial = '';
  constructor(private readonly max = 50) {}

  /** Feeds raw text; complete lines are kept, a trailing partial line waits for its newline. */
  push(text: string): void {
    const parts = (this.partial + text).split(/\r?\n|\r/);
    this.partial = parts.pop() ?? '';
    for (const l of parts) if (l.trim() !== '') this.add(l);
    // A decoder that never prints a newline must not grow this string without bound.
    if (this.partial.length > 4096) {
      this.add(this.partial);
      this.partial = '';
    }
  }

  add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }

  snapshot(): string[] {
    return this.partial.trim() === '' ? [...this.lines] : [...this.lines, this.partial];
  }

  clear(): void {
    this.lines.length = 0;
    this.partial = '';
  }
}
