// Keeps a SerialLink open: retries a failed open and reopens after a disconnect, with backoff.
// A PLC cable or USB adapter that goes away must never stop the device; it comes back by itself.

import { EventEmitter } from 'node:events';
import { backoffDelay, type BackoffOptions } from '../backoff.ts';
import { SerialError } from '../errors.ts';
import type { SerialLink } from './link.ts';

const DEFAULT_RECONNECT: BackoffOptions = { initialMs: 250, factor: 2, maxMs: 5000, jitter: 0 };

export interface KeepOpenEvents {
  up: [];
  down: [error: SerialError];
  retry: [info: { attempt: number; delayMs: number; error: SerialError }];
}

export class KeepOpen extends EventEmitter<KeepOpenEvents> {
  private active = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly backoff: BackoffOptions;
  private readonly onDisconnect = (err: SerialError): void => {
    this.emit('down', err);
    this.schedule(err);
  };

  constructor(
    readonly link: SerialLink,
    backoff: Partial<BackoffOptions> = {},
  ) {
    super();
    this.backoff = { ...DEFAULT_RECONNECT, ...backoff };
  }

  get up(): boolean {
    return this.link.isOpen;
  }

  /** Makes the first attempt and resolves after it, open or not; never rejects. */
  async start(): Promise<void> {
    if (this.active) return;
    this.active = true;
    this.link.on('disconnect', this.onDisconnect);
    await this.tryOpen();
  }

  async stop(): Promise<void> {
    this.active = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.link.off('disconnect', this.onDisconnect);
    await this.link.close();
  }

  private async tryOpen(): Promise<void> {
    this.timer = null;
    if (!this.active || this.link.isOpen) return;
    try {
      await this.link.open();
    } catch (err) {
      const e = err instanceof SerialError ? err : new SerialError('E_SERIAL_OPEN', String(err), { cause: err });
      if (e.code === 'E_SERIAL_ALREADY_OPEN') return;
      this.schedule(e);
      return;
    }
    if (!this.active) {
      await this.link.close();
      return;
    }
    this.attempt = 0;
    this.emit('up');
  }

  private schedule(error: SerialError): void {
    if (!this.active || this.timer !== null) return;
    const delayMs = backoffDelay(this.attempt, this.backoff);
    this.attempt++;
    this.emit('retry', { attempt: this.attempt, delayMs, error });
    this.timer = setTimeout(() => void this.tryOpen(), delayMs);
  }
}
