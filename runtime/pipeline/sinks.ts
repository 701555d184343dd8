// The sinks a device wires up: results to MQTT (through the reporter's outbox), decisions back to
// the PLC that triggered the frame, and a timed reject line for cameras without a PLC handshake.

import type { PlcHandshake } from '../../devices/serial/plc.ts';
import { KeepOpen } from '../../devices/serial/keep-open.ts';
import type { SerialLink } from '../../devices/serial/link.ts';
import type { Reporter } from '../mqtt/reporter.ts';
import type { PipelineFailure, PipelineResult, Sink } from './pipeline.ts';

/** Every result into the reporter (outbox first, QoS 1 after); resolves once durable. */
export class MqttResultSink implements Sink {
  readonly name = 'mqtt';
  constructor(private readonly reporter: Pick<Reporter, 'publishResult'>) {}
  result(r: PipelineResult): Promise<unknown> {
    return this.reporter.publishResult(r.input);
  }
}

/**
 * Decisions for PLC-triggered frames go back through the handshake (RESULT line, reject timing).
 * An inference failure is a fail-safe NG with E2, never silence.
 */
export class PlcSink implements Sink {
  readonly name = 'plc';
  constructor(private readonly plcs: ReadonlyMap<string, PlcHandshake>) {}

  result(r: PipelineResult): void {
    if (r.hit.kind !== 'serial') return;
    const plc = this.plcs.get(r.input.camera);
    plc?.complete(r.hit.triggerId, { kind: r.input.decision === 'OK' ? 'ok' : 'ng', label: r.input.label, score: r.input.score, captureTs: r.frame.captureTs });
  }

  failure(f: PipelineFailure): void {
    if (f.hit.kind !== 'serial') return;
    this.plcs.get(f.camera)?.complete(f.hit.triggerId, { kind: 'error', code: 'INFERENCE_FAILED', captureTs: f.frame.captureTs });
  }
}

export interface RejectOutputOptions {
  /** Capture → actuator travel time (conveyor distance / speed). */
  delayMs: number;
  /** The line written; `{frameId}` and `{camera}` are replaced. */
  line: string;
  /** A result that arrives after its deadline: fire at once (fail-safe, default) or skip. */
  onLate: 'fire' | 'skip';
}

export interface RejectCounters {
  fired: number;
  deadlineMissed: number;
  writeFailures: number;
}

/**
 * A reject actuator on a serial line for free-running cameras: an NG result schedules `line`
 * `delayMs` after the frame's capture. (PLC-triggered cameras get their reject from the PLC
 * handshake instead.) A result later than its deadline is counted as deadline-missed.
 */
export class RejectSink implements Sink {
  readonly name = 'reject';
  readonly counters: RejectCounters = { fired: 0, deadlineMissed: 0, writeFailures: 0 };
  private readonly keep: KeepOpen;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly camera: string,
    private readonly link: SerialLink,
    private readonly o: RejectOutputOptions,
  ) {
    this.keep = new KeepOpen(link);
  }

  start(): Promise<void> {
    return this.keep.start();
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.keep.stop();
  }

  result(r: PipelineResult): void {
    if (r.input.camera !== this.camera || r.input.decision !== 'NG') return;
    const due = r.frame.captureTs + this.o.delayMs;
    const wait = due - Date.now();
    const line = this.o.line.replaceAll('{frameId}', r.input.frameId).replaceAll('{camera}', this.camera);
    if (wait < 0) {
      this.counters.deadlineMissed++;
      if (this.o.onLate === 'skip') return;
      return void this.fire(line);
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      void this.fire(line);
    }, wait);
    this.timers.add(t);
  }

  private async fire(line: string): Promise<void> {
    this.counters.fired++;
    try {
      await this.link.writeLine(line);
    } catch {
      this.counters.writeFailures++;
    }
  }
}
