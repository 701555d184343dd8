// A PNG encoder for snapshots and kept frames (RGB or RGBA, 8-bit) on node:zlib: the runtime bundle
// stays free of native image libraries. Rows get filter 0 (none), or with `filter: 'adaptive'` the
// filter of the five (none, sub, up, average, Paeth) whose output has the least sum of absolute
// values (the PNG specification's suggested heuristic), which deflates camera images smaller.

import { deflate, deflateSync } from 'node:zlib';

const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(parts: readonly Uint8Array[]): number {
  let c = 0xffffffff;
  for (const b of parts) for (let i = 0; i < b.length; i++) c = CRC[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32([head.subarray(4), data]), 0);
  return Buffer.concat([head, data, crc]);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Filters row y of `pixels` into `out` (stride + 1 bytes, filter byte first) with the cheapest filter. */
function adaptiveRow(pixels: Uint8Array, y: number, stride: number, bpp: number, out: Uint8Array, scratch: Uint8Array): void {
  const cur = pixels.subarray(y * stride, (y + 1) * stride);
  const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : null;
  let best = Infinity;
  for (let f = 0; f < 5; f++) {
    let cost = 0;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp]! : 0;
      const b = prev ? prev[i]! : 0;
      const c = prev && i >= bpp ? prev[i - bpp]! : 0;
      const x = cur[i]!;
      const v = (f === 0 ? x : f === 1 ? x - a : f === 2 ? x - b : f === 3 ? x - ((a + b) >> 1) : x - paeth(a, b, c)) & 0xff;
      scratch[i] = v;
      cost += v < 128 ? v : 256 - v;
    }
    if (cost < best) {
      best = cost;
      out[0] = f;
      out.set(scratch.subarray(0, stride), 1);
    }
  }
}

type PngOptions = { filter?: 'none' | 'adaptive' };

/** The filtered scanlines (what IDAT deflates) and the IHDR chunk's body. */
function prepare(pixels: Uint8Array, width: number, height: number, channels: 3 | 4, opts: PngOptions): { raw: Buffer; ihdr: Buffer } {
  const stride = width * channels;
  if (pixels.length !== stride * height) throw new RangeError(`encodePng: ${pixels.length} bytes is not ${width}x${height}x${channels}`);
  const raw = Buffer.alloc((stride + 1) * height);
  if (opts.filter === 'adaptive') {
    const scratch = new Uint8Array(stride);
    for (let y = 0; y < height; y++) adaptiveRow(pixels, y, stride, channels, raw.subarray(y * (stride + 1), (y + 1) * (stride + 1)), scratch);
  } else {
    for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 4 ? 6 : 2; // colour type: RGBA or RGB
  return { raw, ihdr };
}

const assemble = (ihdr: Buffer, idat: Uint8Array) =>
  Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))]);

export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 3 | 4, opts: PngOptions = {}): Buffer {
  const { raw, ihdr } = prepare(pixels, width, height, channels, opts);
  return assemble(ihdr, deflateSync(raw));
}

/** encodePng with deflate on libuv's thread pool, so the main thread keeps serving the line. */
export async function encodePngAsync(pixels: Uint8Array, width: number, height: number, channels: 3 | 4, opts: PngOptions = {}): Promise<Buffer> {
  const { raw, ihdr } = prepare(pixels, width, height, channels, opts);
  const idat = await new Promise<Buffer>((resolve, reject) => deflate(raw, (err, out) => (err ? reject(err) : resolve(out))));
  return assemble(ihdr, idat);
}
