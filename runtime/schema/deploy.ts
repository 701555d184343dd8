// The deployment contract (docs/deploy.md), shared by the device (runtime/deploy/) and the deploy
// controller (fleet/deploy/): the signed deployment document with the policy parts a device
// applies (transfer, shadow, watch), the retained `<device>/deploy` state, the block requests of
// an MQTT transfer and the binary block frames that answer them, and the failure codes.
//
// The document is parsed strictly: a device that does not know a field refuses the document
// rather than ignoring a rule someone signed. Published payloads are parsed leniently like every
// other payload (docs/mqtt.md), so a newer device can add a figure.

import { z } from 'zod';
import { DeployPhase, DeviceId, PAYLOAD_VERSION, RolloutId } from './payloads.ts';

export { DEPLOY_PHASES, DeployPhase, RolloutId, SignedDocument } from './payloads.ts';

export const DEPLOY_DOCUMENT_VERSION = 1 as const;
/** Block sizes a transfer may use: 16 to 128 KiB. */
export const MIN_BLOCK_BYTES = 16 * 1024;
export const MAX_BLOCK_BYTES = 128 * 1024;

const int = z.number().int();
const EpochMs = int.nonnegative();
const Ms = z.number().nonnegative();
const Probability = z.number().min(0).max(1);
const Points = z.number().min(0).max(100);
const Text = (max: number) => z.string().min(1).max(max);
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha256: 64 lowercase hex characters');
const Seconds = z.number().positive().max(30 * 86_400);

// ---------------------------------------------------------------- policy parts the device applies
/**
 * Shadow evaluation: the candidate runs beside the current model on the same frames, unpublished,
 * until `minFrames` were compared; then it is promoted if every criterion holds, else rejected.
 */
export const ShadowPolicy = z.strictObject({
  /** Frames to compare before deciding; 0 promotes as soon as the candidate is verified and loaded. */
  minFrames: int.min(0).max(10_000_000).default(500),
  /** Shadow every n-th batch of frames (1: all). */
  everyNth: int.min(1).max(10_000).default(1),
  /** Largest share of wall time the candidate may spend running (a batch is skipped when over it). */
  cpuBudget: z.number().gt(0).max(1).default(0.5),
  /** Rejected (SHADOW_TIMEOUT) when minFrames were not compared within this time (camera down, paused). */
  maxDurationS: Seconds.default(3600),
  /** Share of frames with the same OK/NG decision. */
  minDecisionAgreement: Probability.default(0.97),
  /** Share of frames with the same top-1 label (only when the label sets are comparable). */
  minTop1Agreement: Probability.optional(),
  /** |NG rate of the candidate − NG rate of the current model|, in percentage points. */
  maxNgRateDiffPt: Points.default(2),
  /** Candidate inference p99 / current p99. */
  maxLatencyRatio: z.number().min(1).optional(),
  /** Candidate inference errors tolerated during the shadow. */
  maxErrors: int.min(0).default(0),
});
export type ShadowPolicy = z.output<typeof ShadowPolicy>;

/** After promotion: for `durationS` the device rolls back by itself when one of these trips. */
export const WatchPolicy = z.strictObject({
  /** 0 commits at promotion. */
  durationS: z.number().min(0).max(30 * 86_400).default(600),
  /** Inference errors (failed frames) tolerated in the window. */
  maxErrors: int.min(0).default(0),
  /** The NG-rate and latency checks start after this many frames. */
  minFrames: int.min(1).default(100),
  /** |NG rate in the window − the candidate's NG rate in the shadow|, percentage points. */
  maxNgRateJumpPt: Points.default(5),
  /** Inference p99 bound in the window (ms); none when omitted. */
  maxInferP99Ms: z.number().positive().optional(),
});
export type WatchPolicy = z.output<typeof WatchPolicy>;

/** How the device fetches the file: blocks over its MQTT session (hashes signed here), or HTTP(S). */
export const DocumentTransfer = z.discriminatedUnion('via', [
  z.strictObject({
    via: z.literal('mqtt'),
    blockBytes: int.min(MIN_BLOCK_BYTES).max(MAX_BLOCK_BYTES),
    /** sha256 of every block, in order: a block that does not match is refused on arrival. */
    blocks: z.array(Sha256).min(1).max(1_000_000),
    /** The device gives up (TRANSFER_STALLED) after this long without a new block. */
    stallS: Seconds.default(120),
    /** Refused blocks (altered, truncated) tolerated before the transfer fails. */
    maxBadBlocks: int.min(0).max(1_000_000).default(8),
  }),
  z.strictObject({
    via: z.literal('http'),
    url: z.string().regex(/^https?:\/\/\S+$/i, 'must be an http:// or https:// URL').max(2048),
    stallS: Seconds.default(120),
  }),
]);
export type DocumentTransfer = z.output<typeof DocumentTransfer>;

/** What is deployed: a fused model artifact (.epk) or a prompt pack (.epp), pinned by sha256. */
export const DeployArtifact = z.strictObject({
  kind: z.enum(['model', 'pack']),
  name: Text(128),
  version: Text(64),
  release: int.nonnegative(),
  sha256: Sha256,
  bytes: int.positive().max(Number.MAX_SAFE_INTEGER),
});
export type DeployArtifact = z.output<typeof DeployArtifact>;

export const DeploymentDocument = z
  .strictObject({
    v: z.literal(DEPLOY_DOCUMENT_VERSION),
    rollout: RolloutId,
    issuedAt: EpochMs,
    /** A device refuses the document after this (DEPLOY_EXPIRED): an old document cannot be replayed later. */
    expiresAt: EpochMs,
    /** The devices this document may run on (DEPLOY_NOT_TARGETED elsewhere). */
    targets: z.array(DeviceId).min(1).max(100_000),
    artifact: DeployArtifact,
    /** Set to artifact.sha256 to install this exact file even though its release is lower. */
    allowDowngrade: Sha256.optional(),
    transfer: DocumentTransfer,
    shadow: ShadowPolicy,
    watch: WatchPolicy,
  })
  .superRefine((d, ctx) => {
    if (d.expiresAt <= d.issuedAt) ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'must be after issuedAt' });
    if (d.allowDowngrade !== undefined && d.allowDowngrade !== d.artifact.sha256) {
      ctx.addIssue({ code: 'custom', path: ['allowDowngrade'], message: 'must equal artifact.sha256: a downgrade is allowed for one exact file' });
    }
    if (new Set(d.targets).size !== d.targets.length) ctx.addIssue({ code: 'custom', path: ['targets'], message: 'lists a device twice' });
    if (d.transfer.via === 'mqtt') {
      const want = Math.ceil(d.artifact.bytes / d.transfer.blockBytes);
      if (d.transfer.blocks.length !== want) {
        ctx.addIssue({ code: 'custom', path: ['transfer', 'blocks'], message: `has ${d.transfer.blocks.length} hashes; ${d.artifact.bytes} bytes in blocks of ${d.transfer.blockBytes} make ${want}` });
      }
    }
  });
export type DeploymentDocument = z.output<typeof DeploymentDocument>;
export type DeploymentDocumentInput = z.input<typeof DeploymentDocument>;

// ---------------------------------------------------------------- state: <device>/deploy (retained)
/** A model or pack as installed: what `release` numbers are compared on. */
export const InstalledRef = z.object({
  kind: z.enum(['model', 'pack']),
  name: Text(128),
  version: Text(64),
  release: int.nonnegative(),
  sha256: Sha256,
});
export type InstalledRef = z.infer<typeof InstalledRef>;

export const Quantiles = z.object({ p50: Ms, p99: Ms });

export const TransferFigures = z.object({
  via: z.enum(['mqtt', 'http']),
  totalBytes: int.nonnegative(),
  /** Bytes held (verified blocks, or the verified prefix over HTTP). */
  bytes: int.nonnegative(),
  totalBlocks: int.nonnegative(),
  /** Blocks held. */
  blocks: int.nonnegative(),
  /** Blocks written to the file, across restarts of the device (each block once when nothing is lost). */
  fetched: int.nonnegative(),
  /** Block indices asked for, re-requests included. */
  requested: int.nonnegative(),
  /** Blocks that arrived again after being held (QoS 1 redelivery, answered re-requests). */
  duplicates: int.nonnegative(),
  /** Blocks refused: wrong size or sha256. */
  badBlocks: int.nonnegative(),
  /** Blocks found on disk (verified again) when the transfer resumed after a restart of the device. */
  resumed: int.nonnegative(),
});
export type TransferFigures = z.infer<typeof TransferFigures>;

export const ShadowFigures = z.object({
  /** Frames run by both models and compared. */
  frames: int.nonnegative(),
  /** Frames not shadowed (every n-th, CPU budget, a run still in flight). */
  skipped: int.nonnegative(),
  errors: int.nonnegative(),
  decisionAgreement: Probability.nullable(),
  top1Agreement: Probability.nullable(),
  ngRate: z.object({ current: Probability.nullable(), candidate: Probability.nullable() }),
  /** Inference time per batch run. */
  inferMs: z.object({ current: Quantiles.nullable(), candidate: Quantiles.nullable() }),
});
export type ShadowFigures = z.infer<typeof ShadowFigures>;

export const WatchFigures = z.object({
  frames: int.nonnegative(),
  errors: int.nonnegative(),
  ngRate: Probability.nullable(),
  inferMs: Quantiles.nullable(),
  /** When the window ends (device clock); the deployment is committed then. */
  endsAt: EpochMs,
});
export type WatchFigures = z.infer<typeof WatchFigures>;

export const DeployReason = z.object({ code: Text(64), message: Text(2000) });
export type DeployReason = z.infer<typeof DeployReason>;

export const DeploymentStatus = z.object({
  rollout: RolloutId,
  artifact: InstalledRef.extend({ bytes: int.positive() }),
  /** The release of the same model (pack name) installed when the deployment started; null if none. */
  releaseBefore: int.nonnegative().nullable(),
  state: DeployPhase,
  startedAt: EpochMs,
  /** When `state` was entered. */
  since: EpochMs,
  transfer: TransferFigures.nullable(),
  shadow: ShadowFigures.nullable(),
  watch: WatchFigures.nullable(),
  /** Why it was rejected or rolled back. */
  reason: DeployReason.nullable(),
});
export type DeploymentStatus = z.infer<typeof DeploymentStatus>;

export const DeployStatePayload = z.object({
  v: z.literal(PAYLOAD_VERSION),
  device: DeviceId,
  ts: EpochMs,
  bootId: Text(64),
  /** What runs now: the model artifact and every prompt pack installed by a deployment or configured. */
  installed: z.object({ model: InstalledRef.nullable(), packs: z.array(InstalledRef) }),
  /** The deployment in progress, else the last one (also one refused before it started). */
  deployment: DeploymentStatus.nullable(),
});
export type DeployStatePayload = z.infer<typeof DeployStatePayload>;
export type DeployStateInput = Omit<DeployStatePayload, 'v' | 'device' | 'ts' | 'bootId'>;

/** Final states: the deployment is over. */
export const isFinalPhase = (s: DeployPhase): boolean => s === 'committed' || s === 'rejected' || s === 'rolled-back';

// ---------------------------------------------------------------- transfer: <device>/deploy/get, /deploy/block
/** A device asks for blocks of the artifact of a rollout (QoS 1, not retained). */
export const BlockRequestPayload = z.object({
  v: z.literal(PAYLOAD_VERSION),
  device: DeviceId,
  rollout: RolloutId,
  sha256: Sha256,
  blocks: z.array(int.nonnegative()).min(1).max(256),
});
export type BlockRequestPayload = z.infer<typeof BlockRequestPayload>;

/**
 * A block on the wire (binary, so a block costs its size plus a few bytes):
 *   'EPB1' | u8 rollout length | rollout (ASCII) | u32 BE block index | the block's bytes
 */
const MAGIC = Buffer.from('EPB1', 'ascii');

export interface BlockFrame {
  rollout: string;
  index: number;
  data: Uint8Array;
}

export function encodeBlockFrame(f: BlockFrame): Buffer {
  const id = Buffer.from(f.rollout, 'ascii');
  const head = Buffer.alloc(4 + 1 + id.length + 4);
  MAGIC.copy(head, 0);
  head.writeUInt8(id.length, 4);
  id.copy(head, 5);
  head.writeUInt32BE(f.index, 5 + id.length);
  return Buffer.concat([head, f.data]);
}

/** The frame, or null for bytes that are not one (the caller counts it as a bad block). */
export function decodeBlockFrame(b: Uint8Array): BlockFrame | null {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length < 9 || !buf.subarray(0, 4).equals(MAGIC)) return null;
  const n = buf.readUInt8(4);
  if (buf.length < 9 + n) return null;
  const rollout = buf.subarray(5, 5 + n).toString('ascii');
  if (!RolloutId.safeParse(rollout).success) return null;
  return { rollout, index: buf.readUInt32BE(5 + n), data: buf.subarray(9 + n) };
}

// ---------------------------------------------------------------- failure codes
/**
 * Every coded reason a deployment is refused, rejected or rolled back with (besides the artifact's
 * own codes: SIGNATURE_INVALID, PACK_BACKBONE_MISMATCH, ...). docs/deploy.md explains each.
 */
export type DeployErrorCode =
  // the document
  | 'DEPLOY_DISABLED'
  | 'DEPLOY_DOCUMENT_INVALID'
  | 'DEPLOY_NO_TRUSTED_KEYS'
  | 'DEPLOY_UNSIGNED'
  | 'DEPLOY_UNKNOWN_KEY'
  | 'DEPLOY_SIGNATURE_INVALID'
  | 'DEPLOY_NOT_TARGETED'
  | 'DEPLOY_EXPIRED'
  | 'DEPLOY_NOT_YET_VALID'
  | 'DEPLOY_BUSY'
  | 'DEPLOY_KIND_MISMATCH'
  | 'DOWNGRADE_REFUSED'
  | 'RELEASE_CONFLICT'
  | 'DISK_FULL'
  // the transfer
  | 'BLOCK_INVALID'
  | 'SIZE_MISMATCH'
  | 'SHA256_MISMATCH'
  | 'TRANSFER_STALLED'
  | 'TRANSFER_FAILED'
  // the file
  | 'ARTIFACT_MISMATCH'
  | 'INSTALL_FAILED'
  // shadow
  | 'SHADOW_DISAGREES'
  | 'SHADOW_TOP1_DISAGREES'
  | 'SHADOW_NG_RATE'
  | 'SHADOW_TOO_SLOW'
  | 'SHADOW_INFERENCE_FAILED'
  | 'SHADOW_TIMEOUT'
  // after promotion
  | 'PROMOTION_FAILED'
  | 'WATCH_INFERENCE_ERRORS'
  | 'WATCH_NG_RATE'
  | 'WATCH_LATENCY'
  // the controller
  | 'POLICY_INVALID'
  | 'NO_DEVICES'
  | 'ROLLOUT_ABORTED'
  | 'STAGE_TIMEOUT';

export class DeployError extends Error {
  override readonly name = 'DeployError';
  constructor(
    readonly code: DeployErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
