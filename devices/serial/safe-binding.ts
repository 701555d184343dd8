// node-serialport's Linux/macOS binding with one fix: a read that returns 0 bytes means the line
// hung up (USB adapter pulled, pty closed), so it becomes a disconnect. The stock unixRead retries
// a 0-byte read at once, forever: 100% CPU and no disconnect event (verified here with a socat pty;
// known upstream as serialport/bindings-cpp#162, fix PR #164 closed unmerged). Everything else is
// the stock binding. On Windows, or if the binding's internals change, the stock read is used.

import { read as fsRead } from 'node:fs';
import { promisify } from 'node:util';
import { SerialPort } from 'serialport';

type Binding = typeof SerialPort.binding;
type Port = Awaited<ReturnType<Binding['open']>>;

/** The LinuxPortBinding / DarwinPortBinding internals the fixed read needs. */
interface UnixInternals {
  fd: number | null;
  poller: { once(event: 'readable', cb: (err?: Error | null) => void): unknown };
}

const readAsync = promisify(fsRead);

function hasUnixInternals(p: unknown): p is UnixInternals {
  const o = p as Partial<UnixInternals>;
  return typeof o.fd === 'number' && typeof o.poller?.once === 'function';
}

class Canceled extends Error {
  readonly canceled = true;
}

async function safeRead(port: Port & UnixInternals, buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }> {
  for (;;) {
    const fd = port.fd;
    if (fd === null) throw new Canceled('Port is not open');
    try {
      const { bytesRead } = await readAsync(fd, buffer, offset, length, null);
      if (bytesRead > 0) return { buffer, bytesRead };
      // EOF on a tty: the other side hung up. Any non-canceled error makes the stream disconnect.
      throw Object.assign(new Error('read returned 0 bytes: the line hung up'), { disconnect: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') throw err;
      if (port.fd === null) throw new Canceled('Port is not open');
      // Wait for data; a close while waiting rejects with the poller's canceled error.
      await new Promise<void>((resolve, reject) => port.poller.once('readable', (e) => (e ? reject(e) : resolve())));
    }
  }
}

function withSafeRead(port: Port): Port {
  if (!hasUnixInternals(port)) return port;
  const unix = port as Port & UnixInternals;
  return new Proxy(port, {
    get(target, prop, receiver) {
      if (prop === 'read') {
        return async (buffer: Buffer, offset: number, length: number) => {
          if (!Buffer.isBuffer(buffer) || buffer.length < offset + length) return target.read(buffer, offset, length); // stock validation errors
          return safeRead(unix, buffer, offset, length);
        };
      }
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** The auto-detected binding, with the hang-up fix on unix. */
export const safeBinding: Binding = {
  ...SerialPort.binding,
  list: () => SerialPort.binding.list(),
  open: async (options: Parameters<Binding['open']>[0]) => withSafeRead(await (SerialPort.binding.open as (o: typeof options) => Promise<Port>)(options)),
} as Binding;
