export * from './trigger.ts';
export { FreeRunTrigger } from './free-run.ts';
export { ArmedTrigger, CommandTrigger, type ArmedOptions, type ArmedEvents } from './armed.ts';
export { SerialTrigger } from './serial.ts';
export { triggerConfigSchema, parseTriggerConfig, createTrigger, type TriggerConfig, type TriggerConfigInput } from './config.ts';
