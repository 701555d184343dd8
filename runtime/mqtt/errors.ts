// Error classes for the MQTT layer. Callers branch on `code`, never on message text
// (docs/style.md rule 7); messages name the field and value and say what to do.

/** A device, camera or command id that cannot be a topic level, or a topic that is not ours. */
export type TopicErrorCode = 'INVALID_ID' | 'NOT_OUR_TOPIC';

export class TopicError extends Error {
  override readonly name = 'TopicError';
  constructor(
    readonly code: TopicErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type OutboxErrorCode =
  | 'OUTBOX_NOT_WRITABLE' // the directory cannot be created or written
  | 'OUTBOX_LOCKED' // another live process holds the directory
  | 'OUTBOX_CLOSED' // put/ack after close()
  | 'OUTBOX_ENTRY_TOO_LARGE' // one entry is larger than the byte bound
  | 'OUTBOX_CORRUPT' // a record in the middle of the log is unreadable
  | 'OUTBOX_BAD_OPTIONS';

export class OutboxError extends Error {
  override readonly name = 'OutboxError';
  constructor(
    readonly code: OutboxErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type OptionsErrorCode = 'INVALID_OPTIONS' | 'TLS_FILE_UNREADABLE';

/** Bad reporter or client options: the message lists every offending field (`issues` holds them). */
export class MqttOptionsError extends Error {
  override readonly name = 'MqttOptionsError';
  constructor(
    readonly code: OptionsErrorCode,
    message: string,
    options?: { cause?: unknown },
    readonly issues: readonly { field: string; message: string }[] = [],
  ) {
    super(message, options);
  }
}

/** Error codes carried in command replies (`error.code`). Handlers may add their own. */
export const CommandErrorCodes = {
  BAD_JSON: 'BAD_JSON',
  UNKNOWN_COMMAND: 'UNKNOWN_COMMAND',
  INVALID_ARGS: 'INVALID_ARGS',
  NOT_SUPPORTED: 'NOT_SUPPORTED',
  HANDLER_FAILED: 'HANDLER_FAILED',
} as const;

/**
 * Thrown by a command handler to reply with a specific code (e.g. `CAMERA_UNKNOWN`).
 * Any other thrown value becomes `HANDLER_FAILED`.
 */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type ReporterErrorCode = 'REPORTER_CLOSED' | 'OUTBOX_SHARED';

export class ReporterError extends Error {
  override readonly name = 'ReporterError';
  constructor(
    readonly code: ReporterErrorCode,
    message: string,
  ) {
    super(message);
  }
}
