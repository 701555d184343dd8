/**
 * How the `edgeprompt` command reports an error: every coded error (compiler, config, artifact,
 * MQTT, devices: each carries an UPPER_SNAKE `code`) is one message without a stack trace, exit 2
 * when the input was at fault and 1 when EdgePrompt failed (compiler/ops/errors.ts isOurFailure);
 * Ctrl-C during training exits 130; only an uncoded error, a bug nobody anticipated, shows its
 * stack (exit 1).
 */
import { isOurFailure } from '../compiler/ops/errors.ts';
import { hasCode, reportError } from '../runtime/cli-entry.ts';

export function errorReport(e: unknown): { exitCode: number; text: string } {
  if (!hasCode(e)) return reportError(e);
  if (e.code === 'TRAINING_INTERRUPTED') return { exitCode: 130, text: `edgeprompt: ${e.message}` };
  const ours = isOurFailure(e.code);
  const tail = ours ? '\n(a failure of EdgePrompt, not of your input: please report it with the command that caused it)' : '';
  return { exitCode: ours ? 1 : 2, text: `edgeprompt: error [${e.code}]: ${e.message}${tail}` };
}
