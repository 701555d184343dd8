// Real MQTT brokers for tests, on 127.0.0.1 and OS-assigned ports (house rule 10):
// - startAedes: in-process aedes (MQTT 3.1.1 only); restart() keeps its persistence, like a durable broker.
// - startMosquitto: /usr/sbin/mosquitto with `persistence true`, stopped with SIGTERM (which saves).
// - startProxy: a TCP relay whose cut() resets every connection, i.e. an abrupt network loss.
// - record: a subscriber that keeps every message and lets a test wait for one, instead of sleeping.
// - payload fixtures and a recording Log shared by the MQTT tests.

import { Aedes } from 'aedes';
import aedesPersistenceModule, { type AedesMemoryPersistence } from 'aedes-persistence';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { HealthInput, ResultInput, StateInput } from '../../runtime/schema/payloads.ts';
import type { Log } from '../../runtime/log.ts';

export interface TestBroker {
  url: string;
  port: number;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

// aedes-persistence is CJS whose module.exports is the factory; its types declare a default export.
const aedesPersistence = aedesPersistenceModule as unknown as () => AedesMemoryPersistence;
type Persistence = AedesMemoryPersistence;

export async function startAedes(opts: { persistence?: Persistence } = {}): Promise<TestBroker & { broker(): Aedes }> {
  const persistence = opts.persistence ?? aedesPersistence();
  let broker: Aedes | null = null;
  let server: net.Server | null = null;
  const sockets = new Set<net.Socket>();
  let port = 0;

  async function start() {
    broker = await Aedes.createBroker({ persistence });
    server = net.createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      broker!.handle(sock);
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
  }
  async function stop() {
    if (!server || !broker) return;
    const [s, b] = [server, broker];
    server = null;
    broker = null;
    for (const sock of sockets) sock.destroy();
    await new Promise<void>((r) => b.close(() => r()));
    await new Promise((r) => s.close(r));
  }
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    broker: () => broker!,
  };
}

export interface Mosquitto extends TestBroker {
  /** SIGKILL: no final save (autosave_interval 1 keeps the loss small). */
  kill(): Promise<void>;
  /** The last lines mosquitto wrote to stderr, for failure messages. */
  logTail(): string;
  /** The stderr lines seen since start, across restarts. */
  readonly log: string[];
}

export interface MosquittoOptions {
  dir: string;
  /** Extra lines appended to the listener block, e.g. TLS or password_file settings. */
  listenerConfig?: string[];
  /** Extra global lines. */
  config?: string[];
  /** Default true; false models a broker that forgets sessions on restart. */
  persistence?: boolean;
  /** Default true. */
  allowAnonymous?: boolean;
  /** The listener speaks TLS (give cafile/certfile/keyfile in listenerConfig): the url is mqtts://. */
  secure?: boolean;
}

export async function startMosquitto(opts: MosquittoOptions): Promise<Mosquitto> {
  const port = await freePort();
  const data = join(opts.dir, 'data') + '/';
  await mkdir(data, { recursive: true });
  const conf = join(opts.dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      // Started as root, mosquitto drops to user 'mosquitto' and silently cannot write a root-owned
      // persistence dir, losing durable sessions on restart (docs/platform.md, MQTT): stay root.
      'user root',
      `persistence ${opts.persistence === false ? 'false' : 'true'}`,
      `persistence_location ${data}`,
      'autosave_interval 1',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      'log_timestamp false',
      ...(opts.config ?? []),
      `allow_anonymous ${opts.allowAnonymous === false ? 'false' : 'true'}`,
      `listener ${port} 127.0.0.1`,
      ...(opts.listenerConfig ?? []),
      '',
    ].join('\n'),
  );
  const log: string[] = [];
  let child: ChildProcess | null = null;

  async function start() {
    const p = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = p;
    let buf = '';
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`mosquitto did not start in 5 s:\n${tail()}`)), 5000);
      p.stderr!.setEncoding('utf8');
      p.stderr!.on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) {
          log.push(l);
          if (/mosquitto version \S+ running/.test(l)) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
      p.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`mosquitto exited (${code ?? sig}) while starting:\n${tail()}`));
      });
    });
    await ready;
  }
  const tail = () => log.slice(-30).join('\n');
  async function end(signal: NodeJS.Signals) {
    const p = child;
    child = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = once(p, 'exit');
    p.kill(signal);
    await exited;
  }
  await start();
  return {
    url: `${opts.secure ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    port,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    restart: async () => {
      await end('SIGTERM');
      await start();
    },
    logTail: tail,
    log,
  };
}

/**
 * A TCP relay in front of a broker; cut() resets every relayed connection at once; down() also
 * refuses new ones (a link that stays cut) until up().
 */
export async function startProxy(targetPort: number) {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let refusing = false;
  const server = net.createServer((down) => {
    if (refusing) {
      down.resetAndDestroy();
      return;
    }
    const up = net.connect(targetPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [down, up];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    down.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    down.pipe(up);
    up.pipe(down);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    connections: () => pairs.size,
    /** Resets both sides: no DISCONNECT packet, so the broker treats it as a lost client. */
    cut() {
      for (const [down, up] of [...pairs]) {
        down.resetAndDestroy();
        up.resetAndDestroy();
      }
      pairs.clear();
    },
    /** Cuts every connection and refuses new ones until up(). */
    down() {
      refusing = true;
      this.cut();
    },
    up() {
      refusing = false;
    },
    close: async () => {
      for (const [down, up] of pairs) (down.destroy(), up.destroy());
      await new Promise((r) => server.close(r));
    },
  };
}

export interface Received {
  topic: string;
  payload: Buffer;
  retain: boolean;
  packet: IPublishPacket;
  json(): unknown;
}

/** A plain mqtt.js subscriber that records everything under `filter`. */
export async function record(url: string, filter: string | string[], options: IClientOptions = {}) {
  const client: MqttClient = mqtt.connect(url, { reconnectPeriod: 100, ...options });
  const messages: Received[] = [];
  const waiters = new Set<() => void>();
  client.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload, retain: packet.retain, packet, json: () => JSON.parse(payload.toString()) });
    for (const w of [...waiters]) w();
  });
  client.on('error', () => {}); // reconnects; the test's waitFor reports what never came
  await new Promise((r) => client.once('connect', r));
  await client.subscribeAsync(filter, { qos: 1 });
  return {
    client,
    messages,
    /** Resolves with the first recorded message (past or future) that matches. */
    waitFor(pred: (m: Received) => boolean, what: string, timeoutMs = 5000): Promise<Received> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = messages.find(pred);
          if (!hit) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const seen = messages.map((m) => `${m.topic} ${m.payload.toString().slice(0, 120)}`).join('\n');
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; recorded:\n${seen}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => client.endAsync(true),
  };
}

/** Polls `cond` every 10 ms; for state that has no event to wait on. */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------- payload fixtures for the MQTT tests


export const MODEL = { name: 'parts-vpt', version: '1.0.0', sha256: 'ab'.repeat(32) };

export function sampleResult(camera: string, n: number, now = Date.now()): ResultInput {
  return {
    camera,
    frameId: `f${n}`,
    triggerId: n % 2 === 0 ? `t${n}` : null,
    captureTs: now - 20,
    model: MODEL,
    label: 'ok-part',
    score: 0.93,
    topK: [
      { label: 'ok-part', score: 0.93 },
      { label: 'scratch', score: 0.05 },
    ],
    decision: 'OK',
    latency: { captureToInferMs: 3, inferMs: 12.5, postMs: 0.2, totalMs: 20 },
  };
}

export function sampleState(): StateInput {
  return {
    model: MODEL,
    ep: 'cpu',
    cameras: ['cam1', 'cam2'],
    thresholds: { default: 0.5, cameras: {} },
    paused: false,
    pausedCameras: [],
  };
}

export function sampleHealth(): HealthInput {
  return {
    uptimeS: 1,
    rssBytes: 1,
    cpuTempC: null,
    model: MODEL,
    ep: 'cpu',
    inferMs: { p50: 12, p99: 20 },
    cameras: { cam1: { state: 'running', fpsIn: 30, fpsProcessed: 29.5, droppedFrames: 3 } },
  };
}

/** A Log that keeps what it was told, for asserting warnings. */
export function recordingLog() {
  const lines: { level: string; msg: string; obj: object }[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, msg, obj });
  const log: Log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { log, lines };
}
