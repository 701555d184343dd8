export * from './link.ts';
export { LineFramer } from './lines.ts';
export { SerialPortLink, type PortLike, type SerialPortLinkOptions } from './serialport-link.ts';
export { MockSerialBus, MockSerialLink, MockPeer } from './mock-link.ts';
export { KeepOpen, DEFAULT_RECONNECT, type KeepOpenEvents } from './keep-open.ts';
export * from './protocol.ts';
export { PlcHandshake, type Decision, type PlcOptions, type PlcCounters, type PlcEvents, type RejectOptions } from './plc.ts';
export { serialLinkConfigSchema, plcConfigSchema, parsePlcConfig, createPlc, plcOptions, linkSpec, serialPortLinks, type LinkFactory, type LinkSpec, type SerialLinkConfig, type PlcConfig, type PlcConfigInput } from './config.ts';
