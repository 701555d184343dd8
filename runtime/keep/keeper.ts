// The keeper: decides which frames go to the recorder and takes the line's labels. It sees every
// result twice, when the pipeline produces it (observe: the frame is held) and once it is durable
// in the outbox (accepted: it has its seq; the rules run). A frame is kept at most once, for every
// reason that holds at that moment; later reasons (a shadow disagreement, a label) keep a frame not
// kept yet. Automatic reasons pass the camera's limits; a label's frame does not (the line sets the
// pace of labels). Every kept frame and every label is put in the spool, whose sender delivers it.

import { createHash, randomUUID } from 'node:crypto';
import { KeepError } from './errors.ts';
import type { Log } from '../log.ts';
import type { Outbox } from '../mqtt/outbox.ts';
import { topics } from '../mqtt/topics.ts';
import type { PipelineResult } from '../pipeline/types.ts';
import { classOf, encodeFrameMessage, LabelPayload, type FrameHeader, type KeepReason } from '../schema/keep.ts';
import { PAYLOAD_VERSION, type ArtifactRef, type ResultPayload } from '../schema/payloads.ts';
import { rulesFor, type KeepConfig, type KeepRules } from './config.ts';
import { encodeImage } from './image.ts';
import { RecentResults, type Recent } from './recent.ts';
import { KeepLimiter, keepReasons, type LimitName } from './rules.ts';

export interface KeeperDeps {
  device: string;
  config: KeepConfig;
  cameras: readonly string[];
  spool: Outbox;
  /** The results' current sequence epoch (a label by seq without seqEpoch means this one). */
  seqEpoch: () => string;
  /** Called after each put: the uploader sends it. */
  spooled: () => void;
  log: Log;
  /** Monotonic ms, for the limits. */
  now?: () => number;
  /** Uniform in [0, 1), for the random sample. */
  draw?: () => number;
}

/** What the line says about a result (the MQTT `label` command, a PLC `LABEL` line). */
export interface LabelRequest {
  camera?: string;
  seq?: number;
  seqEpoch?: string;
  triggerId?: string;
  decision: 'OK' | 'NG';
  class?: string;
  source: 'plc' | 'mqtt';
  by?: string;
}

export interface LabelReply {
  labelId: string;
  target: { seqEpoch: string; seq: number } | null;
  frameKept: boolean;
}

/** A deployment's candidate decided a frame otherwise (runtime/deploy/shadow.ts). */
export interface Disagreement {
  camera: string;
  frame: Uint8Array;
  candidate: { model: ArtifactRef; label: string; decision: 'OK' | 'NG' };
}

export interface KeeperCounters {
  kept: number;
  limited: number;
  limitedBy: Record<LimitName | 'busy', number>;
  byReason: Record<KeepReason, number>;
  labels: number;
  labelsWithoutFrame: number;
  failed: number;
}

export class Keeper {
  private readonly recent: RecentResults;
  private readonly rules = new Map<string, KeepRules>();
  private readonly limiters = new Map<string, KeepLimiter>();
  /** The manifest of each camera's newest result: a label for a result no longer held still gets its class mapped. */
  private readonly lastManifest = new Map<string, PipelineResult['manifest']>();
  private readonly jobs = new Set<Promise<void>>();
  private encoding = 0;
  private readonly now: () => number;
  private readonly draw: () => number;
  private lastFailLog = -Infinity;
  readonly c: KeeperCounters = {
    kept: 0,
    limited: 0,
    limitedBy: { minIntervalMs: 0, perMinute: 0, perHour: 0, perDay: 0, busy: 0 },
    byReason: { ng: 0, uncertain: 0, random: 0, shadow: 0, label: 0 },
    labels: 0,
    labelsWithoutFrame: 0,
    failed: 0,
  };

  constructor(private readonly d: KeeperDeps) {
    this.recent = new RecentResults(d.config.recent);
    this.now = d.now ?? (() => performance.timeOrigin + performance.now());
    this.draw = d.draw ?? Math.random;
    for (const cam of d.cameras) {
      const r = rulesFor(d.config, cam);
      this.rules.set(cam, r);
      this.limiters.set(cam, new KeepLimiter(r.limits));
    }
  }

  /** A result as the pipeline produced it: its frame is held until the result is durable. */
  observe(r: PipelineResult): void {
    this.lastManifest.set(r.input.camera, r.manifest);
    this.recent.observe({ camera: r.input.camera, frame: r.frame, input: r.input, manifest: r.manifest, threshold: r.threshold, result: null, kept: false, pending: new Set() });
  }

  /** The result is durable in the outbox (it has its seq): the automatic rules run. */
  accepted(r: PipelineResult, result: ResultPayload): void {
    const e = this.recent.findByFrame(r.frame.data);
    if (!e) return;
    this.recent.accepted(e, result);
    const rules = this.rules.get(e.camera);
    if (!rules) return;
    const reasons = new Set(keepReasons(result, e.threshold, rules, this.draw));
    for (const p of e.pending) reasons.add(p);
    e.pending.clear();
    if (reasons.size > 0) this.keepLimited(e, [...reasons]);
  }

  /** The shadow candidate disagreed on a frame: keep it (if the rule is on and the limits allow). */
  shadow(x: Disagreement): void {
    const e = this.recent.findByFrame(x.frame);
    const rules = this.rules.get(x.camera);
    if (!e || !rules?.shadow || e.kept) return;
    e.shadow = x.candidate;
    if (e.result === null) e.pending.add('shadow'); // decided before the result was durable: kept with it
    else this.keepLimited(e, ['shadow']);
  }

  /** Takes a label: durable in the spool when this resolves. Keeps the frame when the device still holds it. */
  async label(q: LabelRequest): Promise<LabelReply> {
    if (q.camera !== undefined && !this.rules.has(q.camera)) throw new KeepError('CAMERA_UNKNOWN', `no camera ${JSON.stringify(q.camera)} on this device (cameras: ${[...this.rules.keys()].join(', ')})`);
    let e: Recent | undefined;
    let target: { seqEpoch: string; seq: number } | null = null;
    if (q.seq !== undefined) {
      const seqEpoch = q.seqEpoch ?? this.d.seqEpoch();
      target = { seqEpoch, seq: q.seq };
      e = this.recent.findBySeq(seqEpoch, q.seq);
      if (e && q.camera !== undefined && e.camera !== q.camera) {
        throw new KeepError('LABEL_CAMERA_MISMATCH', `seq ${q.seq} is a result of camera ${e.camera}, not ${q.camera}; leave camera out or fix it`);
      }
    } else if (q.triggerId !== undefined && q.camera !== undefined) {
      e = this.recent.findByTrigger(q.camera, q.triggerId);
      // A PLC may confirm a part as soon as it has its RESULT line, a few ms before the result is
      // durable in the outbox (and has its seq): wait for that, briefly.
      if (e && e.result === null) await Promise.race([e.durable, new Promise((r) => setTimeout(r, 2000).unref())]);
      if (e?.result) target = { seqEpoch: e.result.seqEpoch, seq: e.result.seq };
    }
    const camera = e?.camera ?? q.camera ?? null;
    const keepFrame = e !== undefined && e.result !== null && (this.rules.get(e.camera)?.label ?? false);
    if (e && e.result === null) e = undefined; // never became durable: the recorder resolves the trigger id
    const frameKept = e !== undefined && (e.kept || keepFrame);
    const label: LabelPayload = LabelPayload.parse({
      v: PAYLOAD_VERSION,
      device: this.d.device,
      labelId: randomUUID(),
      ts: Date.now(),
      camera,
      target,
      triggerId: q.triggerId ?? e?.result?.triggerId ?? null,
      decision: q.decision,
      class: q.class === undefined ? null : classOf(q.class, (e?.manifest ?? (camera === null ? undefined : this.lastManifest.get(camera)))?.labels ?? []),
      source: q.source,
      by: q.by ?? null,
      frameKept,
    });
    await this.d.spool.put({ topic: topics.label(this.d.device), payload: Buffer.from(JSON.stringify(label)) });
    this.c.labels++;
    if (!e) this.c.labelsWithoutFrame++;
    this.d.spooled();
    if (keepFrame && !e!.kept) this.keep(e!, ['label']);
    return { labelId: label.labelId, target, frameKept };
  }

  get counters(): KeeperCounters {
    return this.c;
  }

  /** Waits until every frame being encoded or spooled is in the spool (or failed). */
  async settled(): Promise<void> {
    while (this.jobs.size > 0) await Promise.all([...this.jobs]);
  }

  private keepLimited(e: Recent, reasons: KeepReason[]): void {
    if (e.kept) return;
    const why = this.limiters.get(e.camera)!.refusal(this.now());
    if (why !== null) {
      this.c.limited++;
      this.c.limitedBy[why]++;
      return;
    }
    if (this.encoding >= this.d.config.maxEncoding) {
      this.c.limited++;
      this.c.limitedBy.busy++;
      return;
    }
    this.limiters.get(e.camera)!.take(this.now());
    this.keep(e, reasons);
  }

  private keep(e: Recent, reasons: KeepReason[]): void {
    e.kept = true;
    this.encoding++;
    const job = this.spoolFrame(e, reasons)
      .then(() => {
        this.c.kept++;
        for (const r of reasons) this.c.byReason[r]++;
        this.d.spooled();
      })
      .catch((err: unknown) => {
        this.c.failed++;
        if (performance.now() - this.lastFailLog > 10_000) {
          this.lastFailLog = performance.now();
          this.d.log.warn({ err: (err as Error).message, camera: e.camera }, 'keep: a kept frame could not be spooled');
        }
      })
      .finally(() => {
        this.encoding--;
        this.jobs.delete(job);
      });
    this.jobs.add(job);
  }

  private async spoolFrame(e: Recent, reasons: KeepReason[]): Promise<void> {
    const f = e.frame;
    const img = await encodeImage(f.data, f.width, f.height, f.channels, this.d.config.encoding);
    const header: FrameHeader = {
      v: PAYLOAD_VERSION,
      device: this.d.device,
      camera: e.camera,
      result: e.result!,
      release: e.manifest.release,
      task: { labels: e.manifest.labels, okLabels: e.manifest.thresholds.okLabels ?? null, threshold: e.threshold },
      reasons,
      keptTs: Date.now(),
      ...(e.shadow && { shadow: e.shadow }),
      image: { contentType: img.contentType, width: f.width, height: f.height, bytes: img.data.length, sha256: createHash('sha256').update(img.data).digest('hex') },
    };
    await this.d.spool.put({ topic: topics.frame(this.d.device, e.camera), payload: encodeFrameMessage(header, img.data) });
  }
}
