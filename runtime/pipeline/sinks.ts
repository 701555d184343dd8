// The sinks a device wires up: results to MQTT (through the reporter's outbox), decisions back to
// the PLC that triggered the frame, and a timed reject line for cameras without a PLC handshake.

import type { PlcHandshake } from '../../devices/serial/plc.ts';
import { KeepOpen } from '../../devices/serial/keep-open.ts';
import type { SerialLink } from '../../devices/serial/link.ts';
import { RejectScheduler, type RejectCounters, type RejectPolicy } from '../../devices/serial/reject.ts';
import type { Reporter } from '../mqtt/reporter.ts';
import type { ResultPayload } from '../schema/payloads.ts';
import type { PipelineFailure, PipelineResult, Sink } from './pipeline.ts';

/** Every result into the reporter (outbox first, QoS 1 after); resolves once durable. */
export class MqttResultSink implements Sink {
  readonly name = 'mqtt';
  constructor(
    private readonly reporter: Pick<Reporter, 'publishResult'>,
    /** Told of each result once it is durable, with its seq (the keep rules run then). */
    private readonly onStored?: (r: PipelineResult, result: ResultPayload) => void,
  ) {}
  result(r: PipelineResult): Promise<unknown> {
    const p = this.reporter.publishResult(r.input);
    const after = this.onStored;
    return after ? p.then((a) => after(r, a.result)) : p;
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

/** Timing and fail-safe as every reject output has them (devices/serial/reject.ts), and the line. */
export interface RejectOutputOptions extends RejectPolicy {
  /** The line written; `{frameId}` and `{camera}` are replaced. */
  line: string;
}

/**
 * A reject actuator on a serial line for free-running cameras: an NG result is scheduled `delayMs`
 * after the frame's capture by the same RejectScheduler as the PLC handshake's (PLC-triggered
 * cameras reject through it instead). A free-running frame is known only once decided, so an NG
 * later than its due time is a missed deadline: counted, and fired at once unless
 * onMissedDeadline is 'skip'.
 */
export class RejectSink implements Sink {
  readonly name = 'reject';
  private readonly keep: KeepOpen;
  private readonly schedule: RejectScheduler<PipelineResult>;
  private writeFailures = 0;

  constructor(
    readonly camera: string,
    private readonly link: SerialLink,
    private readonly o: RejectOutputOptions,
  ) {
    this.keep = new KeepOpen(link);
    this.schedule = new RejectScheduler<PipelineResult>(o, {
      fire: (r) => void this.fire(this.o.line.replaceAll('{frameId}', r.input.frameId).replaceAll('{camera}', this.camera)),
    });
  }

  get counters(): RejectCounters & { writeFailures: number } {
    return { ...this.schedule.counters, writeFailures: this.writeFailures };
  }

  start(): Promise<void> {
    return this.keep.start();
  }

  async stop(): Promise<void> {
    this.schedule.clear();
    await this.keep.stop();
  }

  result(r: PipelineResult): void {
    if (r.input.camera !== this.camera || r.input.decision !== 'NG') return;
    this.schedule.arm(r, r.frame.captureTs);
    this.schedule.decide(r, true);
  }

  private async fire(line: string): Promise<void> {
    try {
      await this.link.writeLine(line);
    } catch {
      this.writeFailures++;
    }
  }
}
