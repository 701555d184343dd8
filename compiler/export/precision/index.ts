/** fp16 and int8 variants of an exported graph, their calibration, and the gate that decides which ship. */
export { toFp16, defaultFp16Mode, initializerBytes, CPU_FP16_OPS, GPU_FP16_OPS, type Fp16Mode, type Fp16Options, type Fp16Target } from './fp16.ts';
export { quantizeInt8, quantSites, quantizeWeight, activationParams, defaultWeightBits, hostHasVnni, type Calibration, type Int8Options, type QuantSite, type TensorRange } from './int8.ts';
export { calibrate, imageFeeds, pixelTensors, type CalibrateOptions, type Feeds } from './calibrate.ts';
export { gatePrecisions, precisionMetrics, PRECISIONS, type GateOptions, type GateResult, type Precision, type PrecisionMetrics, type Refusal } from './gate.ts';
export { buildPrecision, type PrecisionBuildOptions, type PrecisionModel } from './build.ts';
