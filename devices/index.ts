// Hardware adapters: cameras, the serial PLC link, triggers. Never imports compiler/ or tfjs.
export * from './errors.ts';
export * from './backoff.ts';
export * from './cameras/index.ts';
export * from './serial/index.ts';
export * from './triggers/index.ts';
