export { SessionError, type SessionErrorCode, type EpAttempt } from './errors.ts';
export { ModelSession, OrtSession, artifactRef, type SessionOptions, type Prediction, type BatchResult } from './session.ts';
export { BackboneSession } from './backbone.ts';
export { PackTask, type ModelTask } from './task.ts';
export { ModelHost, DEFAULT_PACK, type HostOptions, type LoadedInfo, type Classifier, type HostEvents, type PackSources, type Prepared } from './host.ts';
export { topK } from './topk.ts';
