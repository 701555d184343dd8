/**
 * Dataset errors. A DataError is a CompilerError (so the CLI prints it as one clean line) whose
 * coarse `code` is one of the compile stage's codes and whose `reason` says exactly what is wrong
 * with the data. Code branches on `reason` (or `code`), never on message text.
 */
import { CompilerError, type CompilerErrorCode } from '../ops/errors.ts';

export type DataErrorReason =
  /** A class folder holds no image files. */
  | 'EMPTY_CLASS'
  /** A dataset root holds no class folders. */
  | 'NO_CLASSES'
  /** A class has fewer samples than a k-shot draw or a split needs. */
  | 'TOO_FEW_SAMPLES'
  /** Class names differ from what is expected (train vs val folders, a checkpoint's head). */
  | 'CLASS_MISMATCH';

export class DataError extends CompilerError {
  readonly reason: DataErrorReason;
  constructor(reason: DataErrorReason, message: string, code: CompilerErrorCode = 'DATA_INVALID') {
    super(code, message);
    this.name = 'DataError';
    this.reason = reason;
  }
}

/** `value` if it is one of `known`, or an error (CONFIG_INVALID unless told) naming `field` and the choices. */
export function checkChoice<T extends string>(value: string, field: string, known: readonly T[], code: CompilerErrorCode = 'CONFIG_INVALID'): T {
  if (!(known as readonly string[]).includes(value)) throw new CompilerError(code, `${field}: expected one of ${known.join(', ')}, got "${value}"`);
  return value as T;
}

/** `value` as an integer ≥ min, or a CONFIG_INVALID error naming `field`. */
export function checkInt(value: number, field: string, min = 0): number {
  if (!Number.isInteger(value) || value < min) throw new CompilerError('CONFIG_INVALID', `${field}: expected an integer ≥ ${min}, got ${value}`);
  return value;
}
