// A real pseudo-terminal pair for serial tests: `socat -d -d pty,raw,echo=0 pty,raw,echo=0`, with
// the two pty paths parsed from socat's stderr. With `links`, socat also makes stable symlinks,
// so a test can kill the pair (a pulled USB adapter) and bring it back at the same paths.

import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { SerialPort } from 'serialport';
import { LineFramer } from '../../devices/serial/lines.ts';

export interface PtyPair {
  /** Paths to open: the symlinks when `links` was given, else /dev/pts/N. */
  a: string;
  b: string;
  /** The /dev/pts devices of the current socat. */
  ptys: [string, string];
  /** Kills socat: both ends disappear, like an unplugged adapter. */
  stop(): Promise<void>;
  /** Starts socat again (same link paths when `links` was given). */
  restart(): Promise<void>;
}

// socat outlives a test process that crashes or times out (the ptys keep it busy), so every live
// one is killed when this process exits, however it exits short of SIGKILL.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGTERM');
});

function startSocat(links?: [string, string]): Promise<{ proc: ChildProcess; ptys: [string, string] }> {
  const end = (i: 0 | 1): string => `pty,raw,echo=0${links ? `,link=${links[i]}` : ''}`;
  const proc = spawn('socat', ['-d', '-d', end(0), end(1)], { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(proc);
  proc.on('close', () => live.delete(proc));
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => {
      proc.kill();
      reject(new Error(`socat did not start within 5 s; stderr:\n${err}`));
    }, 5000);
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run socat (apt-get install socat): ${e.message}`));
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => {
      err += d;
      const ptys = [...err.matchAll(/PTY is (\S+)/g)].map((m) => m[1]!);
      // Wait for the transfer loop: before it, writes to one end may be lost.
      if (ptys.length === 2 && err.includes('starting data transfer loop')) {
        clearTimeout(timer);
        resolve({ proc, ptys: [ptys[0]!, ptys[1]!] });
      }
    });
  });
}

export async function startPtyPair(opts: { links?: [string, string] } = {}): Promise<PtyPair> {
  let cur = await startSocat(opts.links);
  const pair: PtyPair = {
    a: opts.links?.[0] ?? cur.ptys[0],
    b: opts.links?.[1] ?? cur.ptys[1],
    ptys: cur.ptys,
    async stop() {
      const p = cur.proc;
      if (p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise((r) => p.once('close', r));
      p.kill('SIGTERM');
      await gone;
    },
    async restart() {
      await pair.stop();
      cur = await startSocat(opts.links);
      pair.ptys = cur.ptys;
      if (!opts.links) {
        pair.a = cur.ptys[0];
        pair.b = cur.ptys[1];
      }
    },
  };
  return pair;
}

/** Collects `line` events and hands them out in order. */
export class LineQueue {
  readonly all: string[] = [];
  private readonly queued: string[] = [];
  private waiter: ((l: string) => void) | null = null;

  constructor(source: { on(event: 'line', fn: (l: string) => void): unknown }) {
    source.on('line', (l) => {
      this.all.push(l);
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w(l);
      } else this.queued.push(l);
    });
  }

  next(timeoutMs = 10_000): Promise<string> {
    const q = this.queued.shift();
    if (q !== undefined) return Promise.resolve(q);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no line within ${timeoutMs} ms (lines so far: ${JSON.stringify(this.all)})`));
      }, timeoutMs);
      this.waiter = (l) => {
        clearTimeout(timer);
        resolve(l);
      };
    });
  }

  /** Resolves true when nothing arrives for `ms`. */
  async quiet(ms: number): Promise<boolean> {
    if (this.queued.length > 0) return false;
    return this.next(ms).then(
      (l) => {
        this.queued.unshift(l);
        return false;
      },
      () => true,
    );
  }
}

/** The far end of a pty opened with serialport: sends raw text and reads lines, like a PLC. */
export class PtyPeer extends EventEmitter<{ line: [line: string] }> {
  readonly lines: LineQueue;
  private port: SerialPort | null = null;
  private readonly framer = new LineFramer(1 << 20, (l) => this.emit('line', l), () => {});

  constructor(readonly path: string) {
    super();
    this.lines = new LineQueue(this);
  }

  async open(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: 115_200, autoOpen: false });
    await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
    port.on('data', (d: Buffer) => this.framer.push(d));
    port.on('error', () => {});
    port.on('close', () => {
      if (this.port === port) this.port = null;
    });
    this.port = port;
  }

  async send(text: string): Promise<void> {
    const port = this.port;
    if (port === null) throw new Error(`pty peer ${this.path} is not open`);
    await new Promise<void>((res, rej) => port.write(Buffer.from(text, 'latin1'), (e) => (e ? rej(e) : res())));
    await new Promise<void>((res) => port.drain(() => res()));
  }

  sendLine(line: string): Promise<void> {
    return this.send(line + '\r\n');
  }

  async close(): Promise<void> {
    const port = this.port;
    this.port = null;
    if (port?.isOpen) await new Promise<void>((res) => port.close(() => res()));
  }
}
