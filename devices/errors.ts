// Error classes for every hardware adapter. Code branches on `code` (and on the class), never on
// message text; messages name the field or value involved and say what to do.

export type CameraErrorCode =
  | 'E_CAMERA_CONFIG' // a camera config field is missing or invalid
  | 'E_NO_FFMPEG' // neither a system ffmpeg nor @ffmpeg-installer/ffmpeg is available
  | 'E_SPAWN' // the decoder subprocess could not be started
  | 'E_EXIT' // the decoder subprocess exited with an error or a signal
  | 'E_EMPTY_FOLDER' // an image folder holds no decodable images
  | 'E_FOLDER' // an image folder could not be read
  | 'E_SOURCE'; // a source failed in some other way (see `cause`)

export type SerialErrorCode =
  | 'E_SERIAL_CONFIG'
  | 'E_SERIAL_OPEN' // the port could not be opened (missing, locked, permission)
  | 'E_SERIAL_ALREADY_OPEN'
  | 'E_SERIAL_NOT_OPEN' // write on a link that is closed or disconnected
  | 'E_SERIAL_BAD_LINE' // a line to write holds CR/LF or non-printable characters
  | 'E_SERIAL_DISCONNECTED' // the port went away under an open link
  | 'E_SERIAL_WRITE';

export type TriggerErrorCode =
  | 'E_TRIGGER_CONFIG'
  | 'E_TRIGGER_DUPLICATE_ID'
  | 'E_TRIGGER_BAD_ID'
  | 'E_TRIGGER_QUEUE_FULL';

export type DeviceErrorCode = CameraErrorCode | SerialErrorCode | TriggerErrorCode;

export class DeviceError<C extends DeviceErrorCode = DeviceErrorCode> extends Error {
  readonly code: C;
  /** The config field (dotted path) or value the error is about, when there is one. */
  readonly field: string | undefined;
  constructor(code: C, message: string, opts: { field?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.field = opts.field;
  }
}

export class CameraError extends DeviceError<CameraErrorCode> {
  override readonly name = 'CameraError';
}

export class SerialError extends DeviceError<SerialErrorCode> {
  override readonly name = 'SerialError';
}

export class TriggerError extends DeviceError<TriggerErrorCode> {
  override readonly name = 'TriggerError';
}

/** A config that failed validation; `issues` lists every problem, each naming its field. */
export class DeviceConfigError extends DeviceError<'E_CAMERA_CONFIG' | 'E_SERIAL_CONFIG' | 'E_TRIGGER_CONFIG'> {
  override readonly name = 'DeviceConfigError';
  readonly issues: readonly { field: string; message: string }[];
  constructor(
    code: 'E_CAMERA_CONFIG' | 'E_SERIAL_CONFIG' | 'E_TRIGGER_CONFIG',
    issues: readonly { field: string; message: string }[],
  ) {
    const list = issues.map((i) => `${i.field}: ${i.message}`).join('; ');
    super(code, `invalid config: ${list}`, { field: issues[0]?.field ?? '' });
    this.issues = issues;
  }
}

/** Error info that survives JSON (for events sent over MQTT). */
export interface ErrorInfo {
  code: string;
  message: string;
}

export function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof DeviceError) return { code: err.code, message: err.message };
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return { code: typeof code === 'string' ? code : 'E_UNKNOWN', message: err.message };
  }
  return { code: 'E_UNKNOWN', message: String(err) };
}
