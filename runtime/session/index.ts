export { SessionError, type SessionErrorCode, type EpAttempt } from './errors.ts';
export { ModelSession, OrtSession, artifactRef, type SessionOptions } from './session.ts';
export { BackboneSession, PackTask } from './backbone.ts';
export type { ModelTask, Prediction, BatchResult } from './task.ts';
export { ModelHost, DEFAULT_PACK, type HostOptions, type LoadedInfo, type Classifier, type HostEvents, type PackSources, type Prepared } from './host.ts';
export { topK } from './topk.ts';
