// SerialLink over node-serialport (real UARTs, USB adapters, socat pty pairs).

import { EventEmitter } from 'node:events';
import { SerialPort } from 'serialport';
import { SerialError } from '../errors.ts';
import { checkLine, type LineEnding, type LineOptions, type SerialLink, type SerialLinkEvents } from './link.ts';
import { LineFramer } from './lines.ts';
import { safeBinding } from './safe-binding.ts';

/** The part of serialport's SerialPortStream this link uses (SerialPort and SerialPortMock both fit). */
export interface PortLike {
  readonly isOpen: boolean;
  open(cb: (err: Error | null) => void): void;
  write(data: Buffer, cb: (err: Error | null | undefined) => void): boolean;
  close(cb: (err: Error | null) => void): void;
  on(event: 'data', fn: (data: Buffer) => void): unknown;
  on(event: 'close', fn: (err?: Error & { disconnected?: boolean }) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  removeAllListeners(event: 'data' | 'close'): unknown;
}

export interface SerialPortLinkOptions extends LineOptions {
  path: string;
  baudRate?: number;
  /** Builds the unopened port; default a real `SerialPort` (with the hang-up fix in safe-binding.ts), autoOpen off. */
  createPort?: (o: { path: string; baudRate: number }) => PortLike;
}

export class SerialPortLink extends EventEmitter<SerialLinkEvents> implements SerialLink {
  readonly path: string;
  private readonly baudRate: number;
  private readonly ending: LineEnding;
  private readonly framer: LineFramer;
  private readonly createPort: (o: { path: string; baudRate: number }) => PortLike;
  private port: PortLike | null = null;
  private opening = false;
  private closing = false;
  /** Writes not yet confirmed; serialport never settles them once the port is closed, so we do. */
  private readonly inFlight = new Set<(err: SerialError) => void>();

  constructor(o: SerialPortLinkOptions) {
    super();
    this.path = o.path;
    this.baudRate = o.baudRate ?? 115_200;
    this.ending = o.lineEnding ?? '\r\n';
    // SerialPort's constructor spreads our options over its default binding, so `binding` overrides it.
    const options = (p: { path: string; baudRate: number }) => ({ path: p.path, baudRate: p.baudRate, autoOpen: false, binding: safeBinding });
    this.createPort = o.createPort ?? ((p) => new SerialPort(options(p) as ConstructorParameters<typeof SerialPort>[0]) as unknown as PortLike);
    this.framer = new LineFramer(o.maxLineLength ?? 256, (l) => this.emit('line', l), (n) => this.emit('overflow', n));
  }

  get isOpen(): boolean {
    return this.port !== null && this.port.isOpen;
  }

  async open(): Promise<void> {
    if (this.port !== null || this.opening) throw new SerialError('E_SERIAL_ALREADY_OPEN', `${this.path}: already open; close() it first`);
    this.opening = true;
    const port = this.createPort({ path: this.path, baudRate: this.baudRate });
    try {
      await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    } catch (err) {
      throw new SerialError('E_SERIAL_OPEN', `cannot open serial port ${this.path}: ${(err as Error).message}`, { field: 'path', cause: err });
    } finally {
      this.opening = false;
    }
    this.port = port;
    this.closing = false;
    this.framer.reset();
    port.on('data', (d) => this.framer.push(d));
    // Never removed: a write still in flight when the port vanishes fails after 'close', and the
    // stream emits that failure as 'error' too; unheard, it would crash the process.
    port.on('error', () => {
      /* write errors reach their callbacks; read errors end in 'close' with disconnected */
    });
    port.on('close', (err) => {
      if (this.port !== port) return;
      this.port = null;
      this.detach(port);
      if (this.closing) return;
      const cause = err ?? new Error('port closed');
      this.emit('disconnect', new SerialError('E_SERIAL_DISCONNECTED', `serial port ${this.path} disconnected: ${cause.message}`, { cause }));
    });
    this.emit('open');
  }

  async writeLine(line: string): Promise<void> {
    checkLine(line, this.path);
    const port = this.port;
    if (port === null || !port.isOpen) throw new SerialError('E_SERIAL_NOT_OPEN', `${this.path}: not open; cannot write ${JSON.stringify(line)}`);
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (e: SerialError): void => {
        if (settled) return;
        settled = true;
        this.inFlight.delete(fail);
        reject(e);
      };
      this.inFlight.add(fail);
      port.write(Buffer.from(line + this.ending, 'latin1'), (err) => {
        if (err) return fail(new SerialError('E_SERIAL_WRITE', `${this.path}: write failed: ${err.message}`, { cause: err }));
        if (settled) return;
        settled = true;
        this.inFlight.delete(fail);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    const port = this.port;
    if (port === null) return;
    this.closing = true;
    await new Promise<void>((resolve) => port.close(() => resolve()));
    if (this.port === port) {
      this.port = null;
      this.detach(port);
    }
    this.emit('close');
  }

  private detach(port: PortLike): void {
    port.removeAllListeners('data');
    port.removeAllListeners('close');
    const err = new SerialError('E_SERIAL_WRITE', `${this.path}: the port closed before the line was written`);
    for (const fail of [...this.inFlight]) fail(err);
  }
}
