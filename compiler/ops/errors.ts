/** Errors of the compile stage. Code branches on `code`, never on message text. */
export type CompilerErrorCode =
  | 'FILE_NOT_FOUND'
  | 'BAD_FILE'
  | 'UNKNOWN_ARCH'
  | 'MISSING_TENSOR'
  | 'SHAPE_MISMATCH'
  | 'BAD_SHAPE'
  | 'UNSUPPORTED'
  | 'BAD_ARGUMENT'
  // A training run going wrong (compiler/train/diagnose.ts), an error under --strict:
  | 'TRAINING_DIVERGING'
  | 'TRAINING_COLLAPSED'
  | 'TRAINING_NOT_LEARNING';

export class CompilerError extends Error {
  readonly code: CompilerErrorCode;
  constructor(code: CompilerErrorCode, message: string) {
    super(message);
    this.name = 'CompilerError';
    this.code = code;
  }
}
