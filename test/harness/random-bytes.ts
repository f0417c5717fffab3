/** Reproducible incompressible test bytes (xorshift32), shared by the writer suites. */

/** xorshift32 bytes: incompressible, reproducible. */
export function randomBytes(n: number, seed: number): Buffer {
  let x = seed >>> 0 || 1;
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
