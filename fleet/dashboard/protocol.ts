// The messages between the dashboard server and its page (one WebSocket, JSON text frames), and
// the HTTP API's bodies. Types only: the front end (fleet/web/) imports them without cost, and
// both sides are built from this one file. The server validates what the page sends (zod, in
// server.ts); the page trusts its own server.

export type Role = 'operator' | 'viewer';

export interface Counts {
  ok: number;
  ng: number;
}

export interface ShiftDef {
  name: string;
  /** Minutes after local midnight, multiples of 15. end < start: the shift runs past midnight. */
  start: number;
  end: number;
}

export interface ResultView {
  device: string;
  camera: string;
  seq: number;
  seqEpoch: string;
  frameId: string;
  triggerId: string | null;
  captureTs: number;
  publishTs: number;
  label: string;
  score: number;
  decision: 'OK' | 'NG';
  inferMs: number;
  totalMs: number;
  model: string;
  prompt: string | null;
}

export interface CameraView {
  camera: string;
  /** From the device's health: starting | running | lost | stopped; null before any health. */
  state: string | null;
  fpsIn: number | null;
  fpsProcessed: number | null;
  droppedFrames: number | null;
  paused: boolean;
  /** This camera's OK/NG threshold (its own or the device default); null before any state. */
  threshold: number | null;
  shift: Counts;
  today: Counts;
  lastCaptureTs: number | null;
  /** name@version of the model and prompt pack of the newest result. */
  model: string | null;
  prompt: string | null;
  /** The device's drift monitor (health): its latest figures; null before any, or for a model without a drift reference. */
  drift: { scorePsi: number; classPsi: number; frames: number; drifting: boolean } | null;
}

export interface DeviceView {
  device: string;
  /** Retained status: true online, false offline (will or close), null never heard. */
  online: boolean | null;
  statusReason: string | null;
  statusTs: number | null;
  bootId: string | null;
  model: string | null;
  ep: string | null;
  thresholds: { default: number; cameras: Record<string, number> } | null;
  pausedCameras: string[];
  health: {
    ts: number;
    uptimeS: number;
    rssBytes: number;
    cpuTempC: number | null;
    inferMs: { p50: number; p99: number } | null;
    outboxDepth: number;
    mqttConnected: boolean;
  } | null;
  lastResultTs: number | null;
  /** Seqs missing between the first and last stored, over all sequence epochs. */
  missing: number;
  epochs: number;
  lastEvent: { type: string; ts: number; text: string } | null;
  /** From the device's retained deployment state (docs/deploy.md); null when it never sent one. */
  deploy: {
    /** The model installed now: name@version and its release number. */
    installed: string | null;
    /** The deployment in progress, or the last one. */
    rollout: string | null;
    artifact: string | null;
    /** downloading | verifying | shadow | promoted | committed | rejected | rolled-back */
    state: string | null;
    since: number | null;
    reason: string | null;
  } | null;
  cameras: CameraView[];
}

export interface MalformedView {
  device: string;
  kind: string;
  code: string;
  count: number;
  lastTs: number;
  lastTopic: string;
  lastMessage: string;
}

export interface RecorderView {
  connected: boolean;
  received: number;
  stored: number;
  duplicates: number;
  malformed: number;
  pendingAcks: number;
  db: string;
  lastError: string | null;
}

export interface ShiftWindow {
  name: string;
  start: number;
  end: number;
}

export type ServerMessage =
  | { type: 'hello'; user: { name: string; role: Role }; auth: boolean; shifts: ShiftDef[]; version: string }
  | { type: 'fleet'; ts: number; devices: DeviceView[]; malformed: MalformedView[]; recorder: RecorderView; shift: ShiftWindow | null }
  /** New results: every camera on the fleet page (newest `limit`, `skipped` older ones not sent), one camera on its page. */
  | { type: 'results'; results: ResultView[]; skipped: number }
  | {
      type: 'camera';
      device: string;
      camera: string;
      ts: number;
      counters: { shift: Counts & { name: string | null }; today: Counts; last24h: Counts };
      /** Local hours, oldest first: the last 24. */
      hours: (Counts & { start: number })[];
      /** Shift instances of the last 7 days, newest first. */
      shifts: (Counts & ShiftWindow)[];
    }
  /** On opening a camera page: its newest stored results, newest first. */
  | { type: 'camera-history'; device: string; camera: string; results: ResultView[] };

export type ClientMessage = { type: 'view'; view: 'fleet' | 'actions' | 'review' } | { type: 'view'; view: 'camera'; device: string; camera: string };

/** POST /api/command */
export interface CommandRequestBody {
  device: string;
  command: 'set-threshold' | 'pause' | 'resume';
  args: Record<string, unknown>;
}

export interface ActionView {
  id: number;
  ts: number;
  user: string;
  device: string;
  command: string;
  args: unknown;
  ok: boolean;
  reply: unknown;
}

// ---------------------------------------------------------------- review (docs/data-loop.md)

/** A kept frame's key: its result's. */
export interface FrameKey {
  device: string;
  seqEpoch: string;
  seq: number;
}

export interface LabelView {
  labelId: string;
  decision: 'OK' | 'NG';
  class: string | null;
  /** plc | mqtt | review */
  source: string;
  by: string | null;
  ts: number;
}

/** GET /api/review/frames */
export interface FrameSummary extends FrameKey {
  camera: string;
  triggerId: string | null;
  captureTs: number;
  keptTs: number;
  reasons: string[];
  release: number;
  model: string;
  label: string;
  score: number;
  okScore: number | null;
  threshold: number;
  decision: 'OK' | 'NG';
  contentType: string;
  width: number;
  height: number;
  /** The newest label for its result, or null (unreviewed). */
  truth: LabelView | null;
  labels: number;
}

/** GET /api/review/frame, and the answer to POST /api/review/label */
export interface FrameDetail extends FrameSummary {
  /** The task the frame was decided by: classes, good-part classes (null: every one). */
  classes: string[];
  okLabels: string[] | null;
  /** Every label naming its result, oldest first. */
  history: LabelView[];
}

/** GET /api/review/rates: per camera and model, from the line's own ground truth. */
export interface LineRates {
  device: string;
  camera: string;
  model: string;
  /** From the device's kept frames or deployment state; null when neither says. */
  release: number | null;
  /** Results with a label (the newest label of each counts). */
  labelled: number;
  good: number;
  defective: number;
  escapes: number;
  falseRejects: number;
  escapeRate: number | null;
  falseRejectRate: number | null;
}

/** POST /api/review/label */
export interface LabelRequestBody extends FrameKey {
  class: string;
}
