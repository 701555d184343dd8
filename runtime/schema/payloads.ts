// The MQTT payloads: ONE zod schema per payload, used by the publisher (runtime/mqtt/reporter.ts),
// the subscriber client (runtime/mqtt/client.ts) and anything else that reads these messages.
// Every payload carries `v: 1`; a breaking change adds a new literal and keeps the old one parseable.
// Objects are parsed non-strictly (unknown fields are dropped, not refused) so an older subscriber
// keeps reading a newer publisher that added a field; command requests are strict so a typo in a
// field name is refused instead of silently applying a default.

import { z } from 'zod';
import { idProblem, type IdKind } from '../mqtt/topics.ts';

export const PAYLOAD_VERSION = 1 as const;

const id = (kind: IdKind) =>
  z.string().superRefine((v, ctx) => {
    const why = idProblem(kind, v);
    if (why !== null) ctx.addIssue({ code: 'custom', message: `${kind} id ${JSON.stringify(v)} ${why}` });
  });
export const DeviceId = id('device');
export const CameraId = id('camera');

/** Milliseconds since the Unix epoch (device clock). */
const EpochMs = z.number().int().nonnegative();
const Ms = z.number().nonnegative();
const Probability = z.number().min(0).max(1);
const Text = (max: number) => z.string().min(1).max(max);
const V = z.literal(PAYLOAD_VERSION);

/** Identity of a signed artifact (model) or prompt pack. */
export const ArtifactRef = z.object({
  name: Text(128),
  version: Text(64),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters'),
});
export type ArtifactRef = z.infer<typeof ArtifactRef>;

export const LabelScore = z.object({ label: Text(256), score: Probability });
export type LabelScore = z.infer<typeof LabelScore>;

/** Per-stage latency in ms. The four named stages are always present; sources may add more. */
export const Latency = z
  .object({
    captureToInferMs: Ms, // capture timestamp -> inference start (queueing, decode, resize)
    inferMs: Ms, // session.run
    postMs: Ms, // softmax, top-k, threshold
    totalMs: Ms, // capture -> publishTs
  })
  .catchall(Ms);
export type Latency = z.infer<typeof Latency>;

export const Thresholds = z.object({
  default: Probability,
  cameras: z.record(CameraId, Probability),
});
export type Thresholds = z.infer<typeof Thresholds>;

// ---------------------------------------------------------------- result: <device>/<camera>/result
export const ResultPayload = z.object({
  v: V,
  device: DeviceId,
  camera: CameraId,
  frameId: Text(128),
  triggerId: Text(128).nullable(), // null in free-run
  /** Monotonic per device, persisted across restarts; a gap means lost results, a repeat a redelivery. */
  seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  /** Changes when the device's sequence starts again from 0 (a new outbox directory). */
  seqEpoch: Text(64),
  captureTs: EpochMs,
  /** When the result entered the outbox; a late delivery keeps it (compare with receive time). */
  publishTs: EpochMs,
  model: ArtifactRef,
  prompt: ArtifactRef.optional(), // a swapped prompt pack on a shared backbone
  label: Text(256),
  score: Probability,
  topK: z.array(LabelScore).min(1).max(100),
  decision: z.enum(['OK', 'NG']),
  /** Inspection models (manifest okLabels): Σ p over okLabels, the probability that the part is good (runtime/pipeline/inspection.ts). */
  okScore: Probability.optional(),
  latency: Latency,
});
export type ResultPayload = z.infer<typeof ResultPayload>;
/** What the pipeline hands the reporter; the reporter adds v, device, seq, seqEpoch and publishTs. */
export type ResultInput = Omit<ResultPayload, 'v' | 'device' | 'seq' | 'seqEpoch' | 'publishTs'>;

// ---------------------------------------------------------------- status: <device>/status (retained)
export const StatusPayload = z.object({
  v: V,
  device: DeviceId,
  state: z.enum(['online', 'offline']),
  /** connected: birth; closed: graceful close(); connection-lost: the broker sent our last will. */
  reason: z.enum(['connected', 'closed', 'connection-lost']),
  /** For the last will this is the connect time (the will is written when connecting). */
  ts: EpochMs,
  /** Random per process start, so a consumer can tell a reconnect from a restart. */
  bootId: Text(64),
});
export type StatusPayload = z.infer<typeof StatusPayload>;

// ---------------------------------------------------------------- state: <device>/state (retained)
export const StatePayload = z.object({
  v: V,
  device: DeviceId,
  ts: EpochMs,
  bootId: Text(64),
  model: ArtifactRef.nullable(),
  ep: Text(64).nullable(), // execution provider in use: 'tensorrt' | 'cuda' | 'cpu' ...
  cameras: z.array(CameraId),
  thresholds: Thresholds,
  paused: z.boolean(), // every camera paused
  pausedCameras: z.array(CameraId),
});
export type StatePayload = z.infer<typeof StatePayload>;
export type StateInput = Omit<StatePayload, 'v' | 'device' | 'ts' | 'bootId'>;

// ---------------------------------------------------------------- health: <device>/health
/** The drift monitor's latest figures for a camera (runtime/drift/): null before its first evaluation. */
export const DriftFigures = z.object({
  /** PSI of the recent top-1 score distribution against the manifest's reference (adjusted to the recent class mix). */
  scorePsi: z.number().nonnegative(),
  /** PSI of the recent predicted-class mix against the reference's. */
  classPsi: z.number().nonnegative(),
  /** Results in the window compared. */
  frames: z.number().int().nonnegative(),
  drifting: z.boolean(),
});
export type DriftFigures = z.infer<typeof DriftFigures>;

export const CameraHealth = z.object({
  state: z.enum(['starting', 'running', 'lost', 'stopped']),
  fpsIn: Ms,
  fpsProcessed: Ms,
  droppedFrames: z.number().int().nonnegative(),
  drift: DriftFigures.nullable().optional(),
});
export const MqttCounters = z.object({
  connected: z.boolean(),
  published: z.number().int().nonnegative(), // results handed to the broker connection (resends included)
  acked: z.number().int().nonnegative(), // PUBACKs received for results
  outboxDepth: z.number().int().nonnegative(),
  dropped: z.number().int().nonnegative(), // results dropped by the outbox bound (persisted with a file outbox)
  reconnects: z.number().int().nonnegative(),
  rejected: z.number().int().nonnegative().optional(), // results the broker refused; they left the outbox (absent from older devices)
});
export type MqttCounters = z.infer<typeof MqttCounters>;

export const HealthPayload = z.object({
  v: V,
  device: DeviceId,
  ts: EpochMs,
  uptimeS: Ms,
  rssBytes: z.number().int().nonnegative(),
  cpuTempC: z.number().nullable(), // null where /sys/class/thermal is absent
  model: ArtifactRef.nullable(),
  ep: Text(64).nullable(),
  inferMs: z.object({ p50: Ms, p99: Ms }).nullable(), // null before the first inference
  cameras: z.record(CameraId, CameraHealth),
  mqtt: MqttCounters,
  /** The data loop's counters (runtime/keep/), when the device keeps frames. */
  keep: z
    .object({
      kept: z.number().int().nonnegative(), // frames put in the spool
      limited: z.number().int().nonnegative(), // frames a rule picked that a limit refused
      labels: z.number().int().nonnegative(), // labels put in the spool
      labelsWithoutFrame: z.number().int().nonnegative(), // labels for results whose frame was no longer held
      spooled: z.number().int().nonnegative(), // frames and labels waiting to be uploaded
      spooledBytes: z.number().int().nonnegative(),
      dropped: z.number().int().nonnegative(), // dropped by the spool bound (persisted)
      uploaded: z.number().int().nonnegative(), // PUBACKs since start
    })
    .optional(),
});
export type HealthPayload = z.infer<typeof HealthPayload>;
/** What the runtime's health callback supplies; the reporter adds v, device, ts and its counters. */
export type HealthInput = Omit<HealthPayload, 'v' | 'device' | 'ts' | 'mqtt'>;

// ---------------------------------------------------------------- event: <device>/event
const eventBase = { v: V, device: DeviceId, ts: EpochMs };
export const EventPayload = z.discriminatedUnion('type', [
  z.object({ ...eventBase, type: z.literal('model-loaded'), model: ArtifactRef, ep: Text(64), warmupMs: Ms }),
  z.object({ ...eventBase, type: z.literal('model-rejected'), code: Text(64), message: Text(2000) }),
  z.object({ ...eventBase, type: z.literal('camera-lost'), camera: CameraId, reason: Text(2000) }),
  z.object({ ...eventBase, type: z.literal('camera-restored'), camera: CameraId, downMs: Ms }),
  z.object({ ...eventBase, type: z.literal('error'), code: Text(64), message: Text(2000), camera: CameraId.optional() }),
  /** The camera's recent results no longer look like the model's validation set (docs/data-loop.md "Drift"), or do again. */
  z.object({
    ...eventBase,
    type: z.literal('drift'),
    camera: CameraId,
    state: z.enum(['drifting', 'recovered']),
    model: ArtifactRef,
    scorePsi: z.number().nonnegative(),
    classPsi: z.number().nonnegative(),
    frames: z.number().int().nonnegative(),
    /** The configured bounds that were crossed (or are held again). */
    threshold: z.object({ scorePsi: z.number().positive(), classPsi: z.number().positive().nullable() }),
  }),
]);
export type EventPayload = z.infer<typeof EventPayload>;
/** An event as the runtime raises it; the reporter adds v, device and ts. */
export type EventInput = EventPayload extends infer E ? (E extends unknown ? Omit<E, 'v' | 'device' | 'ts'> : never) : never;

// ---------------------------------------------------------------- deployment phases (runtime/schema/deploy.ts)
/** Where a device is with a deployment; the last three are final. See docs/deploy.md. */
export const DEPLOY_PHASES = ['downloading', 'verifying', 'shadow', 'promoted', 'committed', 'rejected', 'rolled-back'] as const;
export const DeployPhase = z.enum(DEPLOY_PHASES);
export type DeployPhase = z.infer<typeof DeployPhase>;
/** A rollout's id: chosen by the deploy controller, carried by its signed document and every deploy state. */
export const RolloutId = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, _ . -');
/** An ed25519 signature over a deployment document by the key with this id (runtime/artifact/keys.ts). */
export const DocumentSignature = z.strictObject({
  keyId: z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 lowercase hex characters'),
  value: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'must be a base64 ed25519 signature (88 characters)'),
});
/** A signed deployment document as it travels: the document's exact JSON text and its signatures. */
export const SignedDocument = z.strictObject({
  document: z.string().min(2).max(8 * 1024 * 1024),
  signatures: z.array(DocumentSignature).max(16),
});
export type SignedDocument = z.infer<typeof SignedDocument>;

// ---------------------------------------------------------------- commands: <device>/cmd/<name>
// Every request may carry `id`, echoed in the reply: correlation for MQTT 3.1.1 requesters, which
// have no correlationData. Requests are strict objects: unknown fields are invalid args.
const requestId = { id: Text(128).optional() };
const PauseReply = z.object({ paused: z.boolean(), pausedCameras: z.array(CameraId) });

/** The command table: the args each command takes and the data its successful reply carries. */
export const commandSchemas = {
  /** Reload the model (the configured artifact, or `artifact`, a path or URL). */
  reload: {
    args: z.strictObject({ ...requestId, artifact: Text(2048).optional() }),
    reply: z.object({ model: ArtifactRef, ep: Text(64) }),
  },
  /** Set the OK/NG threshold for one camera, or the default when `camera` is omitted. */
  'set-threshold': {
    args: z.strictObject({ ...requestId, threshold: Probability, camera: CameraId.optional() }),
    reply: z.object({ thresholds: Thresholds }),
  },
  /** Return the camera's latest frame as an image. */
  snapshot: {
    args: z.strictObject({ ...requestId, camera: CameraId, format: z.enum(['jpeg', 'png']).default('jpeg') }),
    reply: z.object({
      camera: CameraId,
      frameId: Text(128),
      captureTs: EpochMs,
      contentType: z.enum(['image/jpeg', 'image/png']),
      dataBase64: z.string().min(1),
    }),
  },
  /** Stop producing results for one camera, or all when `camera` is omitted. */
  pause: { args: z.strictObject({ ...requestId, camera: CameraId.optional() }), reply: PauseReply },
  resume: { args: z.strictObject({ ...requestId, camera: CameraId.optional() }), reply: PauseReply },
  /** Liveness round trip; answered by the reporter itself. */
  ping: {
    args: z.strictObject({ ...requestId }),
    reply: z.object({ bootId: Text(64), uptimeS: Ms }),
  },
  /** Fire a camera's MQTT-command trigger: its next frame is classified and reported with `triggerId`. */
  trigger: {
    args: z.strictObject({ ...requestId, camera: CameraId, triggerId: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, _ . -').optional() }),
    reply: z.object({ camera: CameraId, triggerId: Text(128) }),
  },
  /**
   * Start a deployment from a signed document (docs/deploy.md). The reply says it was accepted (or
   * why not); progress follows on the retained `<device>/deploy` topic. Sending the same rollout
   * again answers with its state and starts nothing.
   */
  deploy: {
    args: SignedDocument.extend(requestId),
    reply: z.object({ rollout: RolloutId, state: DeployPhase }),
  },
  /**
   * Ground truth from the line for one result (docs/data-loop.md): by `seq` (of `seqEpoch`, default
   * the current one) or by `triggerId` (on `camera`). Replied once the label is durable on the device;
   * it goes to the recorder on `<device>/label`, and the frame too when the device still holds it.
   */
  label: {
    args: z
      .strictObject({
        ...requestId,
        seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
        seqEpoch: Text(64).optional(),
        triggerId: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, _ . -').optional(),
        camera: CameraId.optional(),
        decision: z.enum(['OK', 'NG']),
        class: z.string().min(1).max(256).regex(/^[^\u0000-\u001f\u007f]+$/, 'must not hold control characters').optional(),
        by: Text(128).optional(),
      })
      .refine((a) => (a.seq === undefined) !== (a.triggerId === undefined), { message: 'name the result by seq or by triggerId (one of them)', path: ['seq'] })
      .refine((a) => a.triggerId === undefined || a.camera !== undefined, { message: 'a triggerId names a part on one camera: give camera too', path: ['camera'] }),
    reply: z.object({
      labelId: z.uuid(),
      target: z.object({ seqEpoch: Text(64), seq: z.number().int().nonnegative() }).nullable(),
      frameKept: z.boolean(),
    }),
  },
} as const;

export type CommandName = keyof typeof commandSchemas;
export const isCommandName = (s: string): s is CommandName => Object.hasOwn(commandSchemas, s);
export type CommandArgs<N extends CommandName> = z.infer<(typeof commandSchemas)[N]['args']>;
/** Args as a requester writes them (defaults not yet applied). */
export type CommandRequest<N extends CommandName> = z.input<(typeof commandSchemas)[N]['args']>;
export type CommandReplyData<N extends CommandName> = z.infer<(typeof commandSchemas)[N]['reply']>;

// ---------------------------------------------------------------- replies: <device>/cmd/<name>/reply
const replyBase = { v: V, device: DeviceId, id: Text(128).nullable(), ts: EpochMs };
const ReplyError = z.object({ code: Text(64), message: Text(2000) });
const okReply = <N extends CommandName, D extends (typeof commandSchemas)[N]['reply']>(name: N, data: D) =>
  z.object({ ...replyBase, command: z.literal(name), ok: z.literal(true), data });

const ErrorReply = z.object({ ...replyBase, command: Text(64), ok: z.literal(false), error: ReplyError });
const replyUnion = z.union([
  okReply('reload', commandSchemas['reload'].reply),
  okReply('set-threshold', commandSchemas['set-threshold'].reply),
  okReply('snapshot', commandSchemas['snapshot'].reply),
  okReply('pause', commandSchemas['pause'].reply),
  okReply('resume', commandSchemas['resume'].reply),
  okReply('ping', commandSchemas['ping'].reply),
  okReply('trigger', commandSchemas['trigger'].reply),
  okReply('deploy', commandSchemas['deploy'].reply),
  okReply('label', commandSchemas['label'].reply),
  // An error reply may name a command we do not know (UNKNOWN_COMMAND), so `command` is any string.
  ErrorReply,
]);

/** A successful reply to command N. */
export type OkReply<N extends CommandName> = {
  v: typeof PAYLOAD_VERSION;
  device: string;
  id: string | null;
  ts: number;
  command: N;
  ok: true;
  data: CommandReplyData<N>;
};
export type ErrorReply = z.infer<typeof ErrorReply>;
// Written out (rather than z.infer of the union) so that `reply.ok && reply.command === 'x'` narrows `data`.
export type ReplyPayload = { [N in CommandName]: OkReply<N> }[CommandName] | ErrorReply;
// Compile-time proof that the written-out type and the schema agree, both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const replyTypesAgree: Same<ReplyPayload, z.infer<typeof replyUnion>> = true;
void replyTypesAgree;
export const ReplyPayload: z.ZodType<ReplyPayload> = replyUnion;
