/**
 * Errors of the compile stage. Code branches on `code`, never on message text. Every code is
 * either bad input (the user can fix it: the CLI exits 2) or a failure of EdgePrompt itself
 * (exit 1); `isOurFailure` tells them apart in one place.
 */
export type CompilerErrorCode =
  // Bad input: a file, a flag, a config value, the data, or a result the user's settings refuse.
  | 'FILE_NOT_FOUND' // a file or folder the user named does not exist
  | 'BAD_FILE' // a file exists but is not what it should be (truncated, wrong format)
  | 'UNKNOWN_ARCH' // backbone.arch / --arch is not in the arch table
  | 'WEIGHTS_MISMATCH' // a checkpoint lacks tensors the arch needs, or holds them in other shapes (every one is listed)
  | 'CONFIG_INVALID' // a config value the schema accepts but the job cannot use (options vs backbone, unknown method)
  | 'FLAG_INVALID' // a command-line flag or combination of flags
  | 'DATA_INVALID' // the data set: empty subset, wrong image size, too few images for a batch
  | 'OUTPUT_EXISTS' // an output folder or file would be overwritten without --force
  | 'CHECKPOINT_MISMATCH' // the run in output.dir was trained for another job (or cannot be checked)
  | 'TRAINING_INTERRUPTED' // Ctrl-C: a checkpoint was saved, run the command again to continue
  | 'NAN_LOSS' // the loss became NaN/∞: names the epoch and step, suggests a lower lr
  | 'MODEL_TOO_WEAK' // validation top-1 below gates.minTop1 (override: --allow-weak)
  | 'PRECISION_REFUSED' // no requested precision kept its accuracy (--max-drop)
  | 'UNSUPPORTED' // a combination the compiler does not do (e.g. a shared backbone for `full`)
  // A training run going wrong (compiler/train/diagnose.ts), an error under --strict:
  | 'TRAINING_DIVERGING'
  | 'TRAINING_COLLAPSED'
  | 'TRAINING_NOT_LEARNING'
  // Our failure: a bug or an invariant of EdgePrompt broke; the input was fine.
  | 'PARITY_FAILED' // the exported graph does not compute what was trained
  | 'MISSING_TENSOR' // a graph or engine lacks a tensor it built itself
  | 'BAD_SHAPE' // shape inference found an inconsistent graph
  | 'INTERNAL'; // a library function was called against its contract

export class CompilerError extends Error {
  readonly code: CompilerErrorCode;
  constructor(code: CompilerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CompilerError';
    this.code = code;
  }
}

const OURS: ReadonlySet<string> = new Set<CompilerErrorCode>(['PARITY_FAILED', 'MISSING_TENSOR', 'BAD_SHAPE', 'INTERNAL']);

/** True for the codes that mean EdgePrompt failed (exit 1), false for bad input (exit 2). */
export function isOurFailure(code: string): boolean {
  return OURS.has(code);
}
