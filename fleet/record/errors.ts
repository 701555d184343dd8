// Errors of the recorder and its database. Callers branch on `code` (docs/style.md, rule 7); messages
// name the option, directory or URL and say what to do.

export type RecorderErrorCode =
  | 'DB_BAD_SPEC' // --db is neither a directory nor a postgres:// URL
  | 'DB_LOCKED' // another live process holds the PGlite directory
  | 'DB_UNREACHABLE' // the PostgreSQL server refused or did not answer
  | 'DB_NOT_WRITABLE' // the PGlite directory cannot be created or written
  | 'SCHEMA_TOO_NEW' // the database was migrated by a newer edgeprompt
  | 'RECORDER_BAD_OPTIONS'
  | 'MQTT_CLIENT_UNSUPPORTED'; // the installed mqtt.js lacks what held acknowledgements need

export class RecorderError extends Error {
  override readonly name = 'RecorderError';
  constructor(
    readonly code: RecorderErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
