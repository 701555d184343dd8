/**
 * fp16 and int8 builds of a fused task. Placeholder wiring until the precision passes land:
 * an unsupported precision is refused with a clear error, never shipped as fp32 in disguise.
 */
import type { LabeledSet } from '../data/types.ts';
import type { DeviceProfile } from '../../runtime/config/profile.ts';
import type { Precision } from '../../runtime/artifact/index.ts';
import type { TaskExport } from './task.ts';
import { CompilerError } from '../ops/errors.ts';

export async function buildPrecision(precision: Precision, _fused: Uint8Array, _task: TaskExport, _calibration: LabeledSet, _profile: DeviceProfile | null): Promise<Uint8Array> {
  throw new CompilerError('UNSUPPORTED', `precision ${precision} is not available in this build; use --precision fp32`);
}
