// Coded errors of the data loop on the device (docs/style.md rule 7: code branches on `code`).

export type KeepErrorCode =
  | 'KEEP_DISABLED' // a label came to a device without a `keep` section
  | 'CAMERA_UNKNOWN' // a label names a camera this device does not have
  | 'LABEL_CAMERA_MISMATCH'; // a label's seq is a result of another camera than it names

export class KeepError extends Error {
  override readonly name = 'KeepError';
  constructor(
    readonly code: KeepErrorCode,
    message: string,
  ) {
    super(message);
  }
}
