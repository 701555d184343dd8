// A frame source backed by a decoder subprocess (ffmpeg, gst-launch) writing raw frames to stdout.
// One start() = one subprocess run. The run ends with `end` (eof | crashed | stopped); restarting
// is the watchdog's job. Nothing here throws after start(): a missing binary or camera becomes a
// 'crashed' end with the error code and the stderr tail, so a lost camera never kills the process.

import { spawn, type ChildProcess } from 'node:child_process';
import { errorInfo, CameraError } from '../errors.ts';
import { BaseSource } from './base.ts';
import { frameBytes, type EndInfo, type FrameFormat } from './frame.ts';
import { RawFramer } from './framer.ts';

// A decoder left behind by a crashed runtime would keep the camera (/dev/video0, an RTSP session)
// busy for the restarted one; kill every live decoder when this process exits (short of SIGKILL).
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
  liveChildren.add(child);
  child.on('close', () => liveChildren.delete(child));
}

export interface ProcessSpec {
  command: string;
  args: string[];
}

export interface ProcessSourceOptions {
  camera: string;
  kind: string;
  format: FrameFormat;
  finite: boolean;
  /** Resolved at each start (so a binary installed later is found); may throw a CameraError. */
  spec: () => ProcessSpec;
  /** Grace period between SIGTERM and SIGKILL on stop. */
  stopTimeoutMs?: number;
  stderrLines?: number;
}

export class ProcessSource extends BaseSource {
  readonly kind: string;
  readonly finite: boolean;
  private readonly opts: ProcessSourceOptions;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private stopping = false;
  /** The command line of the current (or last) run, for logs. */
  lastCommand: string[] = [];

  constructor(opts: ProcessSourceOptions) {
    super(opts.camera, opts.format, opts.stderrLines ?? 50);
    this.opts = opts;
    this.kind = opts.kind;
    this.finite = opts.finite;
  }

  /** The decoder's pid while a run is live. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    if (this.child !== null) return;
    this.stopping = false;
    this.tail.clear();
    this.setState('starting', 'start');
    let spec: ProcessSpec;
    try {
      spec = this.opts.spec();
    } catch (err) {
      this.finish({ reason: 'crashed', error: errorInfo(err), stderrTail: [] });
      return;
    }
    this.lastCommand = [spec.command, ...spec.args];
    const framer = new RawFramer(frameBytes(this.format));
    const child = spawn(spec.command, spec.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    this.child = child;
    let spawnError: Error | null = null;
    let done = false;
    let resolveExited!: () => void;
    this.exited = new Promise((r) => (resolveExited = r));

    const end = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (done) return;
      done = true;
      this.child = null;
      const info: EndInfo = { reason: 'eof', exitCode: code, signal, stderrTail: this.tail.snapshot() };
      if (framer.partialBytes > 0) info.partialBytes = framer.partialBytes;
      if (this.stopping) info.reason = 'stopped';
      else if (spawnError !== null) {
        info.reason = 'crashed';
        info.error = errorInfo(new CameraError('E_SPAWN', `could not start ${spec.command}: ${spawnError.message}`, { cause: spawnError }));
      } else if (code !== 0) {
        info.reason = 'crashed';
        const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
        const last = info.stderrTail.at(-1);
        info.error = errorInfo(new CameraError('E_EXIT', `${this.kind} for camera '${this.camera}' ${how}${last ? `: ${last}` : ''}`));
      }
      this.finish(info);
      resolveExited();
    };

    child.on('error', (err) => {
      spawnError = err;
      // A failed spawn has no pid; 'close' normally follows, but do not depend on it.
      if (child.pid === undefined) setImmediate(() => end(null, null));
    });
    child.stdout!.on('data', (chunk: Buffer) => framer.push(chunk, (f) => this.emitFrame(f)));
    child.stdout!.on('error', () => {}); // EPIPE and friends surface as the exit status
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => this.tail.push(text));
    child.stderr!.on('error', () => {});
    child.on('close', (code, signal) => end(code, signal));
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) {
      // Not running; a finished run already reported 'stopped'.
      return;
    }
    this.stopping = true;
    child.kill('SIGTERM');
    // A frozen decoder may be SIGSTOPped (or stopped by a debugger): it can only act on SIGTERM once continued.
    child.kill('SIGCONT');
    const killer = setTimeout(() => child.kill('SIGKILL'), this.opts.stopTimeoutMs ?? 2000);
    try {
      await this.exited;
    } finally {
      clearTimeout(killer);
    }
  }
}
