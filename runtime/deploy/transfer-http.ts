// HTTP(S) pull (`transfer.via: http`): the file comes from a URL in the signed document and is
// trusted only through the sha256 the document pins (checked after the download, like an MQTT
// transfer). An interrupted download continues with a Range request from the bytes already in
// the part file; a server that ignores Range sends it all again. Errors are retried every
// couple of seconds until `stallS` passes without progress.

import { open, stat, type FileHandle } from 'node:fs/promises';
import { DeployError, type TransferFigures } from '../schema/deploy.ts';

export interface HttpTransferOptions {
  url: string;
  part: string;
  totalBytes: number;
  stallMs: number;
  onProgress?(f: TransferFigures): void;
  /** Retry pause after a failed request. */
  retryMs?: number;
}

export class HttpTransfer {
  private stopped = false;
  private controller = new AbortController();
  figures: TransferFigures;

  constructor(private readonly o: HttpTransferOptions) {
    this.figures = { via: 'http', totalBytes: o.totalBytes, bytes: 0, totalBlocks: 0, blocks: 0, fetched: 0, requested: 0, duplicates: 0, badBlocks: 0, resumed: 0 };
  }

  /** Downloads into the part file; resolves when it holds totalBytes. */
  async run(): Promise<void> {
    const held = await stat(this.o.part).then((s) => s.size, () => 0);
    if (held > this.o.totalBytes) throw new DeployError('SIZE_MISMATCH', `${this.o.url}: ${this.o.part} holds ${held} bytes, more than the document's ${this.o.totalBytes}`);
    this.figures.resumed = held;
    this.figures.bytes = held;
    let lastProgress = Date.now();
    let lastError = '';
    while (this.figures.bytes < this.o.totalBytes) {
      if (this.stopped) throw new DeployError('TRANSFER_FAILED', 'stopped');
      if (Date.now() - lastProgress > this.o.stallMs) {
        throw new DeployError('TRANSFER_STALLED', `${this.o.url}: no progress for ${Math.round(this.o.stallMs / 1000)} s (transfer.stallS) at ${this.figures.bytes} of ${this.o.totalBytes} bytes${lastError ? `; last error: ${lastError}` : ''}`);
      }
      const before = this.figures.bytes;
      try {
        await this.fetchOnce();
      } catch (e) {
        if (e instanceof DeployError) throw e;
        lastError = (e as Error).message;
      }
      if (this.figures.bytes > before) lastProgress = Date.now();
      if (this.figures.bytes < this.o.totalBytes && !this.stopped) await new Promise((r) => setTimeout(r, this.o.retryMs ?? 2000));
    }
  }

  stop(): void {
    this.stopped = true;
    this.controller.abort();
  }

  private async fetchOnce(): Promise<void> {
    const from = this.figures.bytes;
    this.figures.requested++;
    this.controller = new AbortController();
    const res = await fetch(this.o.url, { headers: from > 0 ? { range: `bytes=${from}-` } : {}, signal: this.controller.signal });
    if (res.status === 404 || res.status === 403 || res.status === 401 || res.status === 410) {
      throw new DeployError('TRANSFER_FAILED', `GET ${this.o.url}: HTTP ${res.status}; check transfer.url`);
    }
    if (res.status === 416) throw new DeployError('SIZE_MISMATCH', `GET ${this.o.url}: the server has fewer than the ${from} bytes already held; the file is not the one the document pins (${this.o.totalBytes} bytes)`);
    if (!res.ok || !res.body) throw new Error(`GET ${this.o.url}: HTTP ${res.status}`);
    const length = Number(res.headers.get('content-length') ?? NaN);
    if (res.status === 200 && Number.isFinite(length) && length !== this.o.totalBytes) {
      await res.body.cancel();
      throw new DeployError('SIZE_MISMATCH', `GET ${this.o.url}: the server sends ${length} bytes, the document pins ${this.o.totalBytes}`);
    }
    let at = res.status === 206 ? from : 0;
    if (res.status === 206 && !(res.headers.get('content-range') ?? '').startsWith(`bytes ${from}-`)) throw new Error(`GET ${this.o.url}: unexpected Content-Range ${res.headers.get('content-range')}`);
    let fh: FileHandle;
    try {
      fh = await open(this.o.part, at === 0 ? 'w' : 'r+');
    } catch (e) {
      throw new DeployError('INSTALL_FAILED', `${this.o.part}: cannot write (${(e as NodeJS.ErrnoException).code})`, { cause: e });
    }
    this.figures.bytes = at;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (at + chunk.length > this.o.totalBytes) throw new DeployError('SIZE_MISMATCH', `GET ${this.o.url}: the server sends more than the ${this.o.totalBytes} bytes the document pins`);
        try {
          await fh.write(chunk, 0, chunk.length, at);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          throw new DeployError(code === 'ENOSPC' ? 'DISK_FULL' : 'INSTALL_FAILED', `${this.o.part}: write failed (${code ?? (e as Error).message})`, { cause: e });
        }
        at += chunk.length;
        this.figures.bytes = at;
        this.figures.fetched = at - this.figures.resumed;
        this.o.onProgress?.({ ...this.figures });
      }
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }
}
