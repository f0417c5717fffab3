/**
 * CRC32C (Castagnoli), as the kernel's crc32c() computes it for JBD2 checksums: no inversion on entry or
 * exit (callers pass the seed, ~0 to start). Node 20 has no CRC32C and no well-kept package is installed,
 * so a table-driven one lives here, in one place.
 */
const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** crc32c(seed, bytes) without the final inversion (the kernel's crc32c_le). */
export function crc32cUpdate(seed: number, bytes: Uint8Array): number {
  let crc = seed >>> 0;
  for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return crc >>> 0;
}

const TABLE_BE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The kernel's crc32_be (big-endian CRC32, no inversions): JBD2's old COMPAT_CHECKSUM over a transaction. */
export function crc32BeUpdate(seed: number, bytes: Uint8Array): number {
  let crc = seed >>> 0;
  for (let i = 0; i < bytes.length; i++) crc = (TABLE_BE[((crc >>> 24) ^ bytes[i]) & 0xff] ^ (crc << 8)) >>> 0;
  return crc >>> 0;
}
