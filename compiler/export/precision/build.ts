/**
 * One precision variant of an exported fp32 graph, with the metadata that records how it was
 * made (read back by `edgeprompt inspect` and the runtime). Apply this to the fused graph
 * before or after ORT's offline optimisation, but do not optimise an fp16 `storage` model
 * offline afterwards: constant folding turns its fp16 initializers + Casts back into fp32
 * initializers, and the file doubles again (measured: ViT-Ti 11.5 MB → 22.9 MB).
 */
import type { GraphSpec } from '../../ops/onnx-proto.ts';
import { CompilerError } from '../../ops/errors.ts';
import { defaultFp16Mode, toFp16, type Fp16Options } from './fp16.ts';
import { defaultWeightBits, quantizeInt8, type Calibration, type Int8Options } from './int8.ts';
import type { Precision } from './gate.ts';

export interface PrecisionBuildOptions {
  fp16?: Omit<Fp16Options, 'keepIo'>;
  /** Required for int8: activation ranges from `calibrate` on the fp32 model. */
  calibration?: Calibration;
  int8?: Int8Options;
}

export interface PrecisionModel {
  precision: Precision;
  graph: GraphSpec;
  /** Model metadata entries to add to the export's own. */
  metadata: Record<string, string>;
}

export function buildPrecision(g: GraphSpec, precision: Precision, opts: PrecisionBuildOptions = {}): PrecisionModel {
  switch (precision) {
    case 'fp32':
      return { precision, graph: g, metadata: { 'edgeprompt.precision': 'fp32' } };
    case 'fp16': {
      const mode = opts.fp16?.mode ?? defaultFp16Mode(opts.fp16?.target ?? 'cpu');
      return { precision, graph: toFp16(g, { ...opts.fp16, mode, keepIo: true }), metadata: { 'edgeprompt.precision': 'fp16', 'edgeprompt.fp16.mode': mode } };
    }
    case 'int8': {
      const cal = opts.calibration;
      if (!cal) throw new CompilerError('INTERNAL', 'int8 needs a calibration: run calibrate(fp32 model, sample of training images) first');
      const bits = opts.int8?.weightBits ?? defaultWeightBits();
      return {
        precision,
        graph: quantizeInt8(g, cal, { ...opts.int8, weightBits: bits }),
        metadata: {
          'edgeprompt.precision': 'int8',
          'edgeprompt.int8.weight_bits': String(bits),
          ...(opts.int8?.attention === 'dynamic' && { 'edgeprompt.int8.attention': 'dynamic' }),
          'edgeprompt.int8.calibration': `${cal.method}${cal.percentile !== undefined ? ` ${cal.percentile}` : ''} on ${cal.images} images`,
        },
      };
    }
    default:
      throw new CompilerError('INTERNAL', `unknown precision "${String(precision)}"; known: fp32, fp16, int8`);
  }
}
