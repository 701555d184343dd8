export { SessionError, type SessionErrorCode, type EpAttempt } from './errors.ts';
export { ModelSession, artifactRef, type SessionOptions, type Prediction, type BatchResult } from './session.ts';
export { ModelHost, type HostOptions, type LoadedInfo, type Classifier, type HostEvents } from './host.ts';
export { topK } from './topk.ts';
