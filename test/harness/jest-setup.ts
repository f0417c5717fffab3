/**
 * Run in every suite before its tests (jest.config.js setupFilesAfterEnv): byte arrays compare as bytes.
 * Jest's own `toEqual` walks a Buffer element by element through its generic equality — about a minute for
 * a 1 MiB page on this machine — so two Buffers (or Uint8Arrays) of the same type are compared with
 * Buffer.compare instead: the same verdict (length and every byte), and a failure still prints jest's diff.
 */
const bytesOf = (v: unknown): Buffer | undefined =>
  ArrayBuffer.isView(v) && Object.prototype.toString.call(v) === '[object Uint8Array]' ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : undefined;

type Tester = (a: unknown, b: unknown) => boolean | undefined;
// jest 29.4+ has it; @types/jest 29.5 does not declare it yet
(expect as unknown as { addEqualityTesters(testers: Tester[]): void }).addEqualityTesters([
  function sameBytes(a, b) {
    const x = bytesOf(a);
    const y = bytesOf(b);
    // Other types, or a Buffer against a plain Uint8Array: jest's own rules (toStrictEqual tells them apart).
    if (x === undefined || y === undefined || (a as object).constructor !== (b as object).constructor) return undefined;
    return x.length === y.length && Buffer.compare(x, y) === 0;
  },
]);

export {}; // a module: its names stay its own
