// A baseline JPEG encoder (ITU-T T.81, JFIF) in plain TypeScript, so the device bundle can send
// kept frames at a fraction of their PNG size without a native image library. What it writes:
// 8-bit YCbCr, no chroma subsampling (4:4:4: a small stain keeps its colour), the IJG quality
// scaling of the Annex K quantisation tables, and Huffman tables made for each image (two
// passes: the coefficients first, then codes from their frequencies, limited to 16 bits by the
// procedure of Annex K.2/K.3), so no fixed code table has to be carried. Decoded by any JPEG
// reader; test/keep-image.test.ts decodes it with libjpeg-turbo (sharp) and checks the PSNR.

/** Annex K.1: the example luminance and chrominance quantisation tables, in row order. */
const LUMA_Q = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
const CHROMA_Q = [
  17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/** ZIGZAG[k] = the row-order index of the k-th coefficient in zig-zag order. */
const ZIGZAG: number[] = (() => {
  const out: number[] = [];
  for (let s = 0; s < 15; s++) {
    const cells: number[] = [];
    for (let y = 0; y < 8; y++) {
      const x = s - y;
      if (x >= 0 && x < 8) cells.push(y * 8 + x);
    }
    // Even diagonals run up-right (y falling), odd ones down-left (y rising).
    if (s % 2 === 0) cells.reverse();
    out.push(...cells);
  }
  return out;
})();

/** cos((2x+1)uπ/16) · C(u)/2, for the separable 8-point DCT-II. */
const COS = new Float64Array(64);
for (let u = 0; u < 8; u++) for (let x = 0; x < 8; x++) COS[u * 8 + x] = (u === 0 ? Math.SQRT1_2 : 1) * 0.5 * Math.cos(((2 * x + 1) * u * Math.PI) / 16);

/** IJG scaling: quality 50 is the Annex K table, 100 all ones. */
function scaledTable(base: readonly number[], quality: number): Uint8Array {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  const scale = q < 50 ? 5000 / q : 200 - 2 * q;
  return Uint8Array.from(base, (b) => Math.min(255, Math.max(1, Math.floor((b * scale + 50) / 100))));
}

/** The bit size of |v| (JPEG's "category") and its appended bits. */
function category(v: number): number {
  let a = Math.abs(v);
  let n = 0;
  while (a > 0) {
    n++;
    a >>= 1;
  }
  return n;
}

interface HuffTable {
  bits: number[]; // 16 counts: codes of length 1..16
  vals: number[]; // symbols in code order
  code: Int32Array; // per symbol (0..255)
  size: Uint8Array; // per symbol; 0 = unused
}

/** Annex K.2/K.3: code lengths from frequencies (a reserved symbol keeps the all-ones code free), limited to 16 bits. */
function buildTable(freq: Uint32Array): HuffTable {
  const f = Array.from(freq, (x) => x) as number[];
  f.length = 257;
  f[256] = 1; // reserved, so no real code is all ones
  const codesize = new Array<number>(257).fill(0);
  const others = new Array<number>(257).fill(-1);
  for (;;) {
    // v1: the least frequent symbol (the larger index on ties); v2: the next least.
    let v1 = -1;
    let v2 = -1;
    for (let i = 0; i < 257; i++) if (f[i]! > 0 && (v1 < 0 || f[i]! <= f[v1]!)) v1 = i;
    for (let i = 0; i < 257; i++) if (f[i]! > 0 && i !== v1 && (v2 < 0 || f[i]! <= f[v2]!)) v2 = i;
    if (v2 < 0) break;
    f[v1] = f[v1]! + f[v2]!;
    f[v2] = 0;
    codesize[v1]!++;
    let k = v1;
    while (others[k]! >= 0) {
      k = others[k]!;
      codesize[k]!++;
    }
    others[k] = v2;
    codesize[v2]!++;
    k = v2;
    while (others[k]! >= 0) {
      k = others[k]!;
      codesize[k]!++;
    }
  }
  const bits = new Array<number>(33).fill(0);
  for (let i = 0; i < 257; i++) if (codesize[i]! > 0) bits[codesize[i]!]!++;
  for (let i = 32; i > 16; i--) {
    while (bits[i]! > 0) {
      let j = i - 2;
      while (bits[j] === 0) j--;
      bits[i]! -= 2;
      bits[i - 1]!++;
      bits[j + 1]! += 2;
      bits[j]!--;
    }
  }
  let top = 16;
  while (bits[top] === 0) top--;
  bits[top]!--; // the reserved code
  const vals: number[] = [];
  for (let len = 1; len <= 32; len++) for (let s = 0; s < 256; s++) if (codesize[s] === len) vals.push(s);
  const code = new Int32Array(256);
  const size = new Uint8Array(256);
  let c = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    for (let n = 0; n < bits[len]!; n++) {
      const s = vals[k++]!;
      code[s] = c++;
      size[s] = len;
    }
    c <<= 1;
  }
  return { bits: bits.slice(1, 17), vals: vals.slice(0, k), code, size };
}

class BitWriter {
  private buf = Buffer.alloc(4096);
  private len = 0;
  private acc = 0; // pending bits, right-aligned
  private n = 0; // how many

  private byte(b: number): void {
    if (this.len + 2 > this.buf.length) {
      const next = Buffer.alloc(this.buf.length * 2);
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    this.buf[this.len++] = b;
    if (b === 0xff) this.buf[this.len++] = 0; // byte stuffing
  }

  /** Appends the low `count` bits of `value` (count ≤ 16), most significant first. */
  bits(value: number, count: number): void {
    this.acc = (this.acc << count) | (value & ((1 << count) - 1));
    this.n += count;
    while (this.n >= 8) {
      this.n -= 8;
      this.byte((this.acc >>> this.n) & 0xff);
    }
    this.acc &= (1 << this.n) - 1;
  }

  /** Pads the last byte with ones (T.81 F.1.2.3) and returns the entropy-coded segment. */
  finish(): Buffer {
    if (this.n > 0) this.bits((1 << (8 - this.n)) - 1, 8 - this.n);
    return this.buf.subarray(0, this.len);
  }
}

function segment(marker: number, body: Uint8Array): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(marker, 0);
  head.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([head, body]);
}

/** Encodes RGB (or RGBA, alpha ignored) pixels, row-major, as a baseline JFIF JPEG. quality 1..100. */
export function encodeJpeg(pixels: Uint8Array, width: number, height: number, channels: 3 | 4, quality = 90): Buffer {
  if (pixels.length !== width * height * channels) throw new RangeError(`encodeJpeg: ${pixels.length} bytes is not ${width}x${height}x${channels}`);
  if (width < 1 || height < 1 || width > 65535 || height > 65535) throw new RangeError(`encodeJpeg: ${width}x${height} is outside 1..65535`);
  const qt = [scaledTable(LUMA_Q, quality), scaledTable(CHROMA_Q, quality)];
  const bw = Math.ceil(width / 8);
  const bh = Math.ceil(height / 8);
  // Colour conversion once, into three planes padded to whole blocks (edge pixels repeated).
  const PW = bw * 8;
  const PH = bh * 8;
  const planes = [new Float32Array(PW * PH), new Float32Array(PW * PH), new Float32Array(PW * PH)];
  const [Y, Cb, Cr] = planes as [Float32Array, Float32Array, Float32Array];
  for (let y = 0; y < PH; y++) {
    const sy = Math.min(height - 1, y);
    for (let x = 0; x < PW; x++) {
      const o = (sy * width + Math.min(width - 1, x)) * channels;
      const r = pixels[o]!;
      const g = pixels[o + 1]!;
      const b = pixels[o + 2]!;
      const i = y * PW + x;
      Y[i] = 0.299 * r + 0.587 * g + 0.114 * b - 128;
      Cb[i] = -0.168736 * r - 0.331264 * g + 0.5 * b;
      Cr[i] = 0.5 * r - 0.418688 * g - 0.081312 * b;
    }
  }
  // Pass 1: every block's quantised coefficients (zig-zag order), component-interleaved per MCU.
  const coefs = new Int16Array(bw * bh * 3 * 64);
  const block = new Float64Array(64);
  const tmp = new Float64Array(64);
  const recip = qt.map((q) => Float64Array.from(ZIGZAG, (z) => 1 / q[z]!));
  for (let by = 0; by < bh; by++) {
    for (let bx = 0; bx < bw; bx++) {
      for (let comp = 0; comp < 3; comp++) {
        const plane = planes[comp]!;
        for (let y = 0; y < 8; y++) {
          const row = (by * 8 + y) * PW + bx * 8;
          for (let x = 0; x < 8; x++) block[y * 8 + x] = plane[row + x]!;
        }
        // Rows, then columns: tmp[y][u] = Σx C[u][x]·block[y][x]; F[v][u] = Σy C[v][y]·tmp[y][u].
        for (let y = 0; y < 8; y++) {
          const r = y * 8;
          for (let u = 0; u < 8; u++) {
            const c = u * 8;
            tmp[r + u] =
              COS[c]! * block[r]! + COS[c + 1]! * block[r + 1]! + COS[c + 2]! * block[r + 2]! + COS[c + 3]! * block[r + 3]! +
              COS[c + 4]! * block[r + 4]! + COS[c + 5]! * block[r + 5]! + COS[c + 6]! * block[r + 6]! + COS[c + 7]! * block[r + 7]!;
          }
        }
        const inv = recip[comp === 0 ? 0 : 1]!;
        const base = ((by * bw + bx) * 3 + comp) * 64;
        for (let k = 0; k < 64; k++) {
          const idx = ZIGZAG[k]!;
          const c = (idx >> 3) * 8;
          const u = idx & 7;
          const s =
            COS[c]! * tmp[u]! + COS[c + 1]! * tmp[8 + u]! + COS[c + 2]! * tmp[16 + u]! + COS[c + 3]! * tmp[24 + u]! +
            COS[c + 4]! * tmp[32 + u]! + COS[c + 5]! * tmp[40 + u]! + COS[c + 6]! * tmp[48 + u]! + COS[c + 7]! * tmp[56 + u]!;
          coefs[base + k] = Math.round(s * inv[k]!);
        }
      }
    }
  }
  // Symbol frequencies: DC differences and AC run/size pairs, luma and chroma apart.
  const freq = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)]; // dc0 ac0 dc1 ac1
  const walk = (emit: (table: number, symbol: number, extra: number, extraBits: number) => void) => {
    const prev = [0, 0, 0];
    for (let b = 0; b < bw * bh; b++) {
      for (let comp = 0; comp < 3; comp++) {
        const base = (b * 3 + comp) * 64;
        const t = comp === 0 ? 0 : 2;
        const dc = coefs[base]!;
        const diff = dc - prev[comp]!;
        prev[comp] = dc;
        const cat = category(diff);
        emit(t, cat, diff < 0 ? diff + (1 << cat) - 1 : diff, cat);
        let run = 0;
        for (let k = 1; k < 64; k++) {
          const v = coefs[base + k]!;
          if (v === 0) {
            run++;
            continue;
          }
          while (run > 15) {
            emit(t + 1, 0xf0, 0, 0); // ZRL: sixteen zeros
            run -= 16;
          }
          const c = category(v);
          emit(t + 1, (run << 4) | c, v < 0 ? v + (1 << c) - 1 : v, c);
          run = 0;
        }
        if (run > 0) emit(t + 1, 0x00, 0, 0); // EOB
      }
    }
  };
  walk((t, s) => void freq[t]![s]!++);
  const tables = freq.map(buildTable);
  const out = new BitWriter();
  walk((t, s, extra, n) => {
    const h = tables[t]!;
    out.bits(h.code[s]!, h.size[s]!);
    if (n > 0) out.bits(extra, n);
  });
  const scan = out.finish();

  const dqt = Buffer.concat(qt.map((q, i) => Buffer.from([i, ...ZIGZAG.map((z) => q[z]!)])));
  const sof = Buffer.alloc(15);
  sof[0] = 8;
  sof.writeUInt16BE(height, 1);
  sof.writeUInt16BE(width, 3);
  sof[5] = 3;
  [
    [1, 0x11, 0],
    [2, 0x11, 1],
    [3, 0x11, 1],
  ].forEach(([id, hv, tq], i) => sof.set([id!, hv!, tq!], 6 + 3 * i));
  const dht = Buffer.concat(tables.map((h, i) => Buffer.from([[0x00, 0x10, 0x01, 0x11][i]!, ...h.bits, ...h.vals])));
  const sos = Buffer.from([3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
  const jfif = Buffer.from([0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), segment(0xffe0, jfif), segment(0xffdb, dqt), segment(0xffc0, sof), segment(0xffc4, dht), segment(0xffda, sos), scan, Buffer.from([0xff, 0xd9])]);
}
