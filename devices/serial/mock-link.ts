// The in-memory SerialLink test double. Like @serialport/binding-mock it only adds controls
// (createPort, the peer's send/unplug/replug, a recording) and is as strict as a real port:
// opening a path nobody created, opening twice, a port held by another link, writing while
// closed and writing CR/LF or binary all fail with the same error codes as SerialPortLink, and
// everything is delivered asynchronously. Error messages say how to fix the test.

import { EventEmitter } from 'node:events';
import { SerialError } from '../errors.ts';
import { checkLine, type LineEnding, type LineOptions, type SerialLink, type SerialLinkEvents } from './link.ts';
import { LineFramer } from './lines.ts';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The far end of a mock port: the test plays the PLC through it. */
export class MockPeer extends EventEmitter<{ line: [line: string]; data: [text: string] }> {
  /** Everything the device wrote, as text, in order. */
  recording = '';
  /** Lines the device wrote. */
  readonly lines: string[] = [];
  private plugged = true;
  private readonly framer: LineFramer;
  /** @internal the link currently holding this port */
  holder: MockSerialLink | null = null;

  constructor(
    readonly path: string,
    private readonly ending: LineEnding,
  ) {
    super();
    this.framer = new LineFramer(1 << 20, (l) => {
      this.lines.push(l);
      this.emit('line', l);
    }, () => {});
  }

  get isPlugged(): boolean {
    return this.plugged;
  }

  /** Sends raw text to the device (any bytes, any chunking), delivered on a later tick. */
  async send(text: string): Promise<void> {
    const holder = this.holder;
    if (holder === null) throw new Error(`mock port ${this.path}: no link has it open; call link.open() before the peer sends`);
    await tick();
    holder.deliver(Buffer.from(text, 'latin1'));
  }

  /** Sends one line followed by the port's line ending. */
  sendLine(line: string): Promise<void> {
    return this.send(line + this.ending);
  }

  /** The USB adapter is pulled: the open link gets `disconnect`, and opens fail until replug(). */
  async unplug(): Promise<void> {
    this.plugged = false;
    const holder = this.holder;
    this.holder = null;
    await tick();
    holder?.lost();
  }

  replug(): void {
    this.plugged = true;
  }

  /** @internal bytes written by the device */
  receive(data: Buffer): void {
    const text = data.toString('latin1');
    this.recording += text;
    this.emit('data', text);
    this.framer.push(data);
  }
}

export class MockSerialBus {
  private readonly ports = new Map<string, MockPeer>();

  /** Creates a port at `path` and returns its far end. */
  createPort(path: string, opts: { lineEnding?: LineEnding } = {}): MockPeer {
    if (this.ports.has(path)) throw new Error(`mock port ${path} exists already; use bus.peer('${path}') to reach it`);
    const peer = new MockPeer(path, opts.lineEnding ?? '\r\n');
    this.ports.set(path, peer);
    return peer;
  }

  peer(path: string): MockPeer {
    const p = this.ports.get(path);
    if (p === undefined) throw new Error(`no mock port ${path}; call bus.createPort('${path}') first`);
    return p;
  }

  /** @internal */
  find(path: string): MockPeer | undefined {
    return this.ports.get(path);
  }

  link(o: LineOptions & { path: string }): MockSerialLink {
    return new MockSerialLink(this, o);
  }
}

export class MockSerialLink extends EventEmitter<SerialLinkEvents> implements SerialLink {
  readonly path: string;
  private readonly ending: LineEnding;
  private readonly framer: LineFramer;
  private peer: MockPeer | null = null;
  private opening = false;

  constructor(
    private readonly bus: MockSerialBus,
    o: LineOptions & { path: string },
  ) {
    super();
    this.path = o.path;
    this.ending = o.lineEnding ?? '\r\n';
    this.framer = new LineFramer(o.maxLineLength ?? 256, (l) => this.emit('line', l), (n) => this.emit('overflow', n));
  }

  get isOpen(): boolean {
    return this.peer !== null;
  }

  async open(): Promise<void> {
    if (this.peer !== null || this.opening) throw new SerialError('E_SERIAL_ALREADY_OPEN', `${this.path}: already open; close() it first`);
    this.opening = true;
    await tick();
    this.opening = false;
    const peer = this.bus.find(this.path);
    if (peer === undefined || !peer.isPlugged) {
      const why = peer === undefined ? `no mock port; call bus.createPort('${this.path}') first` : 'the mock port is unplugged; call peer.replug() first';
      throw new SerialError('E_SERIAL_OPEN', `cannot open serial port ${this.path}: ${why}`, { field: 'path' });
    }
    if (peer.holder !== null) throw new SerialError('E_SERIAL_OPEN', `cannot open serial port ${this.path}: locked by another link; close that one first`, { field: 'path' });
    peer.holder = this;
    this.peer = peer;
    this.framer.reset();
    this.emit('open');
  }

  async writeLine(line: string): Promise<void> {
    checkLine(line, this.path);
    const peer = this.peer;
    if (peer === null) throw new SerialError('E_SERIAL_NOT_OPEN', `${this.path}: not open; cannot write ${JSON.stringify(line)}`);
    const bytes = Buffer.from(line + this.ending, 'latin1');
    await tick();
    if (this.peer !== peer) throw new SerialError('E_SERIAL_WRITE', `${this.path}: write failed: the port went away`);
    peer.receive(bytes);
  }

  async close(): Promise<void> {
    const peer = this.peer;
    if (peer === null) return;
    this.peer = null;
    if (peer.holder === this) peer.holder = null;
    await tick();
    this.emit('close');
  }

  /** @internal bytes from the peer */
  deliver(data: Buffer): void {
    if (this.peer !== null) this.framer.push(data);
  }

  /** @internal the peer was unplugged */
  lost(): void {
    if (this.peer === null) return;
    this.peer = null;
    this.emit('disconnect', new SerialError('E_SERIAL_DISCONNECTED', `serial port ${this.path} disconnected: mock port unplugged`));
  }
}
