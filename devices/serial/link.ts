// The serial-line contract the PLC handshake is written against. Two implementations pass one
// contract suite (test/devices-serial-link.test.ts): SerialPortLink (real ports, pty pairs) and
// MockSerialLink (in memory, as strict as hardware).
//
// Behaviour every implementation guarantees:
// - `line` carries one received line without its terminator; CR, LF and CRLF all end a line and
//   empty lines are dropped. Bytes are read as latin1, so garbage arrives as-is for the protocol
//   layer to reject.
// - A line longer than `maxLineLength` is dropped whole and reported once as `overflow`.
// - `writeLine` appends the configured line ending; it rejects (SerialError) with E_SERIAL_NOT_OPEN
//   when the link is not open and E_SERIAL_BAD_LINE for CR/LF or non-printable characters. Writes
//   go out in call order and resolve once handed to the OS.
// - The port vanishing under an open link (USB adapter unplugged, pty closed) emits `disconnect`
//   once and leaves the link closed; close() emits `close` and never `disconnect`.

import { SerialError } from '../errors.ts';

export interface SerialLinkEvents {
  open: [];
  line: [line: string];
  overflow: [droppedBytes: number];
  disconnect: [error: SerialError];
  close: [];
}

export interface SerialLink {
  readonly path: string;
  readonly isOpen: boolean;
  /** Rejects with E_SERIAL_OPEN (missing, locked, no permission) or E_SERIAL_ALREADY_OPEN. */
  open(): Promise<void>;
  writeLine(line: string): Promise<void>;
  /** Idempotent. */
  close(): Promise<void>;
  on<K extends keyof SerialLinkEvents>(event: K, listener: (...args: SerialLinkEvents[K]) => void): this;
  off<K extends keyof SerialLinkEvents>(event: K, listener: (...args: SerialLinkEvents[K]) => void): this;
  once<K extends keyof SerialLinkEvents>(event: K, listener: (...args: SerialLinkEvents[K]) => void): this;
}

export type LineEnding = '\n' | '\r\n' | '\r';

export interface LineOptions {
  /** Appended to written lines. Default '\r\n' (what most PLC serial modules expect). */
  lineEnding?: LineEnding;
  /** Longest accepted received line, in bytes. Default 256. */
  maxLineLength?: number;
}

/** Printable ASCII only: what a PLC string register can hold, and no way to smuggle a line break. */
export function checkLine(line: unknown, path: string): string {
  if (typeof line !== 'string') throw new SerialError('E_SERIAL_BAD_LINE', `${path}: writeLine expects a string, got ${typeof line}`);
  const bad = /[^\x20-\x7e]/.exec(line);
  if (bad) {
    const code = bad[0].charCodeAt(0).toString(16).padStart(2, '0');
    throw new SerialError('E_SERIAL_BAD_LINE', `${path}: line ${JSON.stringify(line)} holds character 0x${code} at ${bad.index}; only printable ASCII is allowed and the line ending is added for you`);
  }
  return line;
}
