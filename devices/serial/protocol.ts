// The PLC line protocol (docs/serial-protocol.md): parsing what the PLC sends and formatting what
// the device answers. Pure functions; the state machine is plc.ts.

/** Numeric error codes sent as `E<n>` at the end of a fail-safe NG result. */
export const PLC_ERRORS = {
  RESULT_TIMEOUT: 1, // no decision within resultTimeoutMs of TRIG
  INFERENCE_FAILED: 2, // the model could not classify the frame
  CAMERA_DOWN: 3, // no frame captured within captureTimeoutMs of TRIG, or the camera is lost
  LATE: 4, // the decision came after the reject deadline; the reject could not be timed
  BUSY: 5, // too many triggers in flight
  SHUTDOWN: 6, // the device stopped with this trigger unanswered
  INTERNAL: 9, // any other device fault
} as const;
export type PlcErrorName = keyof typeof PLC_ERRORS;

/** Why a received line was refused with `ERR <reason>`. */
export type GarbageReason =
  | 'unknown_command'
  | 'missing_id'
  | 'bad_id'
  | 'extra_tokens'
  | 'bad_chars'
  | 'line_too_long'
  | 'duplicate_id' // TRIG for an id still in flight
  | 'unknown_id' // ACK for an id we never had (or already acknowledged)
  | 'unexpected_ack' // ACK before the RESULT was sent
  | 'bad_verdict' // LABEL with something other than OK or NG
  | 'bad_class' // LABEL with a class token outside A-Z a-z 0-9 _ . - (1-32)
  | 'labels_off' // LABEL on a device that takes no labels (no keep section)
  | 'label_failed'; // LABEL that could not be stored (the device's disk)

export type PlcCommand =
  | { cmd: 'TRIG'; id: string }
  | { cmd: 'ACK'; id: string }
  | { cmd: 'PING' }
  /** Ground truth for the part `id` (a trigger id): a confirmation or an override, optionally with its class. */
  | { cmd: 'LABEL'; id: string; verdict: 'OK' | 'NG'; label: string | null };

export type ParsedLine = { ok: true; command: PlcCommand } | { ok: false; reason: GarbageReason };

const ID_PATTERN = /^[A-Za-z0-9_.-]{1,32}$/;
const CLASS_PATTERN = /^[A-Za-z0-9_.-]{1,32}$/;

export function parsePlcLine(line: string): ParsedLine {
  if (/[^\x20-\x7e]/.test(line)) return { ok: false, reason: 'bad_chars' };
  const tokens = line.trim().split(/ +/);
  const [cmd, id, ...rest] = tokens;
  switch (cmd) {
    case 'PING':
      return id === undefined ? { ok: true, command: { cmd: 'PING' } } : { ok: false, reason: 'extra_tokens' };
    case 'TRIG':
    case 'ACK':
      if (id === undefined) return { ok: false, reason: 'missing_id' };
      if (!ID_PATTERN.test(id)) return { ok: false, reason: 'bad_id' };
      if (rest.length > 0) return { ok: false, reason: 'extra_tokens' };
      return { ok: true, command: { cmd, id } };
    case 'LABEL': {
      if (id === undefined) return { ok: false, reason: 'missing_id' };
      if (!ID_PATTERN.test(id)) return { ok: false, reason: 'bad_id' };
      const [verdict, label, ...more] = rest;
      if (verdict !== 'OK' && verdict !== 'NG') return { ok: false, reason: 'bad_verdict' };
      if (more.length > 0) return { ok: false, reason: 'extra_tokens' };
      if (label !== undefined && !CLASS_PATTERN.test(label)) return { ok: false, reason: 'bad_class' };
      return { ok: true, command: { cmd, id, verdict, label: label ?? null } };
    }
    default:
      return { ok: false, reason: 'unknown_command' };
  }
}

export interface Verdict {
  verdict: 'OK' | 'NG';
  /** Class name ('-' when there is none, e.g. camera down). */
  label: string;
  score: number;
  /** Set for fail-safe NGs: why there is no trustworthy decision. */
  error?: PlcErrorName;
}

/** A class name as one protocol token: spaces and other characters become '_'. */
function labelToken(label: string): string {
  const t = label.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 32);
  return t === '' ? '-' : t;
}

export function formatResult(id: string, v: Verdict): string {
  const score = Number.isFinite(v.score) ? Math.min(1, Math.max(0, v.score)).toFixed(3) : '0.000';
  return `RESULT ${id} ${v.verdict} ${labelToken(v.label)} ${score}${v.error ? ` E${PLC_ERRORS[v.error]}` : ''}`;
}

export const formatReady = (id: string): string => `READY ${id}`;
/** The device has the label for `id` on its disk. */
export const formatLabeled = (id: string): string => `LABELED ${id}`;
export const formatErr = (reason: GarbageReason, id?: string): string => (id === undefined ? `ERR ${reason}` : `ERR ${reason} ${id}`);
/** The reject output line: `{id}` in the template is replaced by the trigger id. */
export const formatReject = (template: string, id: string): string => template.replaceAll('{id}', id);
