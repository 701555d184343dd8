// The device side of the data loop, wired from the device config's `keep` section: the spool
// (runtime/keep/spool.ts), the keeper that fills it (keep rules, labels), and the uploader that
// empties it over the reporter's session. runtime.ts opens it before the reporter (the `label`
// command needs it) and attaches it once the reporter, the pipeline and the PLCs exist.

import type { PlcHandshake } from '../../devices/serial/plc.ts';
import type { ShadowTap } from '../deploy/shadow.ts';
import type { KeepConfig } from '../keep/config.ts';
import { Keeper, type LabelReply, type LabelRequest } from '../keep/keeper.ts';
import { openSpool, type Spool } from '../keep/spool.ts';
import { SpoolUploader } from '../keep/uploader.ts';
import type { Log } from '../log.ts';
import type { Reporter } from '../mqtt/reporter.ts';
import type { Pipeline } from '../pipeline/pipeline.ts';
import type { HealthPayload } from '../schema/payloads.ts';

export class DataLoop {
  private keeper: Keeper | null = null;
  private uploader: SpoolUploader | null = null;

  private constructor(
    private readonly cfg: KeepConfig,
    readonly spool: Spool,
    private readonly log: Log,
  ) {}

  /** Opens the spool (OUTBOX_NOT_WRITABLE / OUTBOX_LOCKED name keep.dir). */
  static async open(cfg: KeepConfig, log: Log): Promise<DataLoop> {
    return new DataLoop(cfg, await openSpool({ dir: cfg.dir, maxBytes: cfg.maxBytes, maxEntries: cfg.maxEntries, log }), log);
  }

  attach(d: { device: string; reporter: Reporter; pipeline: Pipeline; tap: ShadowTap; plcs: ReadonlyMap<string, PlcHandshake> }): Keeper {
    const uploader = new SpoolUploader(this.spool, d.reporter, this.cfg.maxInflight, this.log);
    const keeper = new Keeper({
      device: d.device,
      config: this.cfg,
      cameras: d.pipeline.cameraIds,
      spool: this.spool,
      seqEpoch: () => d.reporter.seqEpoch,
      spooled: () => uploader.pump(),
      log: this.log,
    });
    d.pipeline.on('result', (r) => keeper.observe(r));
    d.tap.onDisagree = (x) => keeper.shadow(x);
    for (const [camera, plc] of d.plcs) {
      plc.setLabelHandler((l) => keeper.label({ camera, triggerId: l.id, decision: l.verdict, ...(l.label !== null && { class: l.label }), source: 'plc' }));
    }
    uploader.pump(); // what a previous run left in the spool
    this.keeper = keeper;
    this.uploader = uploader;
    return keeper;
  }

  label(q: LabelRequest): Promise<LabelReply> {
    return this.keeper!.label(q);
  }

  health(): NonNullable<HealthPayload['keep']> {
    const c = this.keeper?.counters;
    return {
      kept: c?.kept ?? 0,
      limited: c?.limited ?? 0,
      labels: c?.labels ?? 0,
      labelsWithoutFrame: c?.labelsWithoutFrame ?? 0,
      spooled: this.spool.size,
      spooledBytes: this.spool.bytes,
      dropped: this.spool.dropped,
      uploaded: this.uploader?.uploaded ?? 0,
    };
  }

  /** Resolves once every spooled message was acknowledged (a drain on stop). */
  drained(): Promise<void> {
    return this.uploader?.drained() ?? Promise.resolve();
  }

  /** Waits for frames being encoded to reach the spool (after the pipeline stopped). */
  async settle(): Promise<void> {
    await this.keeper?.settled();
  }

  /** After the reporter closed: stops sending, closes the spool (what was not acknowledged stays for the next start). */
  async close(): Promise<void> {
    await this.uploader?.close();
    await this.spool.close();
  }
}
