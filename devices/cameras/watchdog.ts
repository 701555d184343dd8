// Keeps any FrameSource alive. Three signals (as Frigate's CameraWatchdog): the run ended (decoder
// crashed, live stream hit EOF), no first frame within `firstFrameMs`, or no frame for `stallMs`.
// Each leads to a restart paced by exponential backoff, capped low (1 s by default) so a camera that
// comes back is running again within about a second plus its start-up (issue: cameras that flap;
// Edge Impulse restarts a lost camera after 2 s, Frigate after 20-60 s). The restart budget is for
// crash loops: it counts restarts after runs that delivered frames but died before `healthyAfterMs`;
// more than `budget.maxRestarts` of those in `budget.windowMs` switches to a long cooldown (default)
// or stops for good. A camera that is simply unreachable (runs that never deliver a frame) is tried
// again at the backoff pace for as long as it is away, and a healthy run that ends later is a flap,
// not a crash loop. Every state change is a `camera_state` event carrying the decoder's stderr tail
// on a crash. Nothing here throws or exits: a camera that is gone leaves the process running and
// retrying.

import { EventEmitter } from 'node:events';
import { backoffDelay, type BackoffOptions } from '../backoff.ts';
import type { CameraState, CameraStateEvent, EndInfo, Frame, FrameSource, FrameSourceEvents } from './frame.ts';

/** Restart pacing of a lost camera: 250 ms, 500 ms, then every second while it stays away. */
export const CAMERA_BACKOFF: BackoffOptions = { initialMs: 250, factor: 2, maxMs: 1000, jitter: 0 };

export interface WatchdogOptions {
  /** No frame for this long while running → stalled → restart. Default 2000 ms. */
  stallMs?: number;
  /** Time allowed from (re)start to the first frame (RTSP needs ~1.5 s). Default max(10 s, stallMs). */
  firstFrameMs?: number;
  /** Default CAMERA_BACKOFF. */
  backoff?: Partial<BackoffOptions>;
  /** A run that has delivered frames for this long is healthy: it resets the backoff and its end is no crash loop. Default 5000 ms. */
  healthyAfterMs?: number;
  /** Crash-loop budget: restarts after runs that delivered frames and died before healthyAfterMs. Default 10 in 60 s. */
  budget?: { maxRestarts: number; windowMs: number };
  /** What to do when the budget is spent: wait `cooldownMs` and go on (default), or stop for good. */
  onBudgetExhausted?: 'cooldown' | 'stop';
  cooldownMs?: number;
  /** How often the stall check runs. Default min(200, stallMs / 10), so a stall is declared within stallMs + 200 ms. */
  tickMs?: number;
}

export interface WatchdogStats {
  state: CameraState;
  frames: number;
  restarts: number;
  crashes: number;
  stalls: number;
  /** Restarts that counted against the crash-loop budget. */
  crashLoops: number;
  /** Backoff step of the next restart. */
  attempt: number;
  lastFrameTs: number | null;
}

export class Watchdog extends EventEmitter<FrameSourceEvents> implements FrameSource {
  readonly camera: string;
  readonly kind: string;
  private current: CameraState = 'stopped';
  private active = false;
  private attempt = 0;
  private restartTimes: number[] = [];
  private runStart = 0;
  private lastFrameTs: number | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private counts = { frames: 0, restarts: 0, crashes: 0, stalls: 0, crashLoops: 0 };
  private runFrames = 0;
  private readonly o: Required<Omit<WatchdogOptions, 'backoff'>> & { backoff: BackoffOptions };

  constructor(
    readonly inner: FrameSource,
    options: WatchdogOptions = {},
  ) {
    super();
    this.camera = inner.camera;
    this.kind = inner.kind;
    const stallMs = options.stallMs ?? 2000;
    this.o = {
      stallMs,
      firstFrameMs: options.firstFrameMs ?? Math.max(10_000, stallMs),
      backoff: { ...CAMERA_BACKOFF, ...options.backoff },
      healthyAfterMs: options.healthyAfterMs ?? 5000,
      budget: options.budget ?? { maxRestarts: 10, windowMs: 60_000 },
      onBudgetExhausted: options.onBudgetExhausted ?? 'cooldown',
      cooldownMs: options.cooldownMs ?? 60_000,
      tickMs: options.tickMs ?? Math.min(200, Math.max(10, stallMs / 10)),
    };
    inner.on('frame', (f) => this.onFrame(f));
    inner.on('end', (info) => this.onInnerEnd(info));
  }

  get format() {
    return this.inner.format;
  }
  get finite(): boolean {
    return this.inner.finite;
  }
  get state(): CameraState {
    return this.current;
  }
  diagnostics(): string[] {
    return this.inner.diagnostics();
  }
  stats(): WatchdogStats {
    return { state: this.current, ...this.counts, attempt: this.attempt, lastFrameTs: this.lastFrameTs };
  }

  async start(): Promise<void> {
    if (this.active) return;
    this.active = true;
    this.attempt = 0;
    this.restartTimes = [];
    this.ticker = setInterval(() => this.tick(), this.o.tickMs);
    await this.launch('start');
  }

  async stop(): Promise<void> {
    if (!this.active && this.current === 'stopped') return;
    this.active = false;
    this.clearTimers();
    await this.inner.stop();
    this.setState('stopped', 'stopped');
    this.emit('end', { reason: 'stopped', stderrTail: this.inner.diagnostics() });
  }

  private clearTimers(): void {
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    if (this.ticker !== null) clearInterval(this.ticker);
    this.restartTimer = null;
    this.ticker = null;
  }

  private setState(state: CameraState, reason: string, extra: Partial<CameraStateEvent> = {}): void {
    const prev = this.current;
    if (state === prev && extra.retryInMs === undefined) return;
    this.current = state;
    this.emit('state', { type: 'camera_state', camera: this.camera, state, prev, reason, ts: Date.now(), ...extra });
  }

  private async launch(reason: string): Promise<void> {
    this.restartTimer = null;
    if (!this.active) return;
    this.runStart = Date.now();
    this.lastFrameTs = null;
    this.runFrames = 0;
    this.setState('starting', reason, { attempt: this.attempt });
    await this.inner.start();
  }

  private onFrame(f: Frame): void {
    if (!this.active || this.current === 'stalled' || this.current === 'restarting') return; // a dying run's last frames
    const now = Date.now();
    this.lastFrameTs = now;
    this.counts.frames++;
    this.runFrames++;
    if (this.current === 'starting') this.setState('running', 'first_frame', { attempt: this.attempt });
    if (this.attempt > 0 && now - this.runStart >= this.o.healthyAfterMs) this.attempt = 0;
    this.emit('frame', f);
  }

  private onInnerEnd(info: EndInfo): void {
    // 'stopped' ends are the ones we caused (stop(), stall handling); a restart is already arranged.
    if (!this.active || info.reason === 'stopped' || this.current === 'stalled' || this.current === 'restarting') return;
    if (info.reason === 'eof' && this.inner.finite) {
      this.active = false;
      this.clearTimers();
      this.setState('stopped', 'eof');
      this.emit('end', info);
      return;
    }
    if (info.reason === 'crashed') this.counts.crashes++;
    const extra: Partial<CameraStateEvent> = { stderrTail: info.stderrTail };
    if (info.error) extra.error = info.error;
    if (info.exitCode !== undefined) extra.exitCode = info.exitCode;
    if (info.signal !== undefined) extra.signal = info.signal;
    // A live stream that ends (EOF) is as lost as one that crashed.
    this.scheduleRestart(info.reason === 'eof' ? 'ended' : 'crashed', extra);
  }

  private tick(): void {
    if (!this.active) return;
    const now = Date.now();
    if (this.current === 'starting' && now - this.runStart > this.o.firstFrameMs) void this.stall('no_first_frame');
    else if (this.current === 'running' && this.lastFrameTs !== null && now - this.lastFrameTs > this.o.stallMs) void this.stall('stall');
  }

  private async stall(reason: string): Promise<void> {
    this.counts.stalls++;
    this.setState('stalled', reason, { stderrTail: this.inner.diagnostics() });
    await this.inner.stop();
    if (this.active) this.scheduleRestart(reason, {});
  }

  private scheduleRestart(reason: string, extra: Partial<CameraStateEvent>): void {
    if (this.restartTimer !== null) return;
    const now = Date.now();
    const { maxRestarts, windowMs } = this.o.budget;
    this.restartTimes = this.restartTimes.filter((t) => now - t < windowMs);
    // A crash loop: this run delivered frames and still died before it was healthy. A run with no
    // frame (camera unreachable) or a healthy one (a flap) is paced by the backoff alone.
    const crashLoop = this.runFrames > 0 && now - this.runStart < this.o.healthyAfterMs;
    let delay: number;
    if (crashLoop && this.restartTimes.length >= maxRestarts) {
      if (this.o.onBudgetExhausted === 'stop') {
        this.active = false;
        this.clearTimers();
        this.setState('stopped', 'budget_exhausted', extra);
        this.emit('end', { reason: 'crashed', stderrTail: extra.stderrTail ?? [], ...(extra.error ? { error: extra.error } : {}) });
        return;
      }
      delay = this.o.cooldownMs;
      reason = `${reason}:budget_exhausted`;
      this.restartTimes = []; // a fresh budget after the cooldown
    } else {
      // A healthy run that ended (a flap) starts the pacing from the beginning.
      if (this.runFrames > 0 && !crashLoop) this.attempt = 0;
      delay = backoffDelay(this.attempt, this.o.backoff);
      this.attempt++;
    }
    if (crashLoop) {
      this.restartTimes.push(now);
      this.counts.crashLoops++;
    }
    this.counts.restarts++;
    this.setState('restarting', reason, { ...extra, attempt: this.attempt, retryInMs: delay });
    this.restartTimer = setTimeout(() => void this.launch('restart'), delay);
  }
}
