/**
 * fp16 and int8 builds of the verified fp32 model (after ORT's offline optimisation: optimising
 * an fp16-storage model again would fold its Casts back to fp32, doubling the file). The device
 * profile decides the fp16 flavour (compute on GPU execution providers, storage on CPU, where ORT
 * runs almost nothing in fp16) and the int8 weight range (7-bit on x86 without VNNI, whose
 * u8×s8 kernels saturate; 8-bit elsewhere). int8 calibrates activations on training images.
 */
import type * as ort from 'onnxruntime-node';
import type { LabeledSet } from '../data/types.ts';
import type { DeviceProfile } from '../../runtime/config/profile.ts';
import type { Precision } from '../../runtime/artifact/index.ts';
import { decodeModel, encodeModel } from '../ops/onnx-proto.ts';
import { buildPrecision as build, calibrate, defaultWeightBits, imageFeeds, type Int8Options } from './precision/index.ts';
import { mulberry32, shuffleInPlace } from '../../devices/rng.ts';

export interface PrecisionChoice {
  fp16Target: 'cpu' | 'gpu';
  weightBits: 7 | 8;
}

export function precisionChoice(profile: DeviceProfile | null): PrecisionChoice {
  const gpu = profile?.executionProviders.some((e) => e.name === 'cuda' || e.name === 'tensorrt') ?? false;
  // No profile, or an x64 one: the host's own CPU features decide (compile where you deploy, or pass a profile).
  const weightBits = profile?.arch === 'arm64' ? 8 : (defaultWeightBits() as 7 | 8);
  return { fp16Target: gpu ? 'gpu' : 'cpu', weightBits };
}

/** `feeds`: graph inputs besides the image (a shared backbone's pack tensors), fed with every calibration batch. */
export async function buildPrecision(precision: Precision, fp32: Uint8Array, calibrationSet: LabeledSet, profile: DeviceProfile | null, samples = 128, feeds: Record<string, ort.Tensor> = {}, int8: Pick<Int8Options, 'attention'> = {}): Promise<Uint8Array> {
  if (precision === 'fp32') return fp32;
  const m = decodeModel(fp32);
  const choice = precisionChoice(profile);
  let extra: Record<string, string>;
  let graph;
  if (precision === 'fp16') {
    ({ graph, metadata: extra } = build(m.graph, 'fp16', { fp16: { target: choice.fp16Target } }));
  } else {
    const pick = shuffleInPlace([...calibrationSet.samples], mulberry32(1234)).slice(0, samples).map((s) => s.image);
    const calibration = await calibrate(fp32, imageFeeds(pick, calibrationSet.size).map((f) => ({ ...f, ...feeds })));
    ({ graph, metadata: extra } = build(m.graph, 'int8', { calibration, int8: { ...int8, weightBits: choice.weightBits } }));
  }
  return encodeModel(graph, { ...m.metadata, ...extra }, m.extraOpsets);
}
