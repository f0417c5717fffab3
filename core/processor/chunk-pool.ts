/** INTERIM (writer15): part A's chunk pool per SPEC15 signatures, in the calling thread; replaced by the `chunks` branch on merge. */
import { looksIncompressible, lz4IfSmaller } from '../repo/block-codec';
import { Codec2, sealBlock2 } from '../repo/v2/block';
import { Chunking, chunkLengths, gearTable } from '../repo/v2/chunker';
import type { Keyring } from '../repo/v2/keyring';
import { zstdEncode } from '../repo/v2/zstd';

export type CodecSetting = 'zstd' | 'lz4' | 'stored';
export const DEFAULT_CODEC: CodecSetting = 'zstd';
export interface PageChunk { offset: number; length: number; contentId: Buffer | null }
export interface ChunkPool {
  chunkPage(page: Buffer, chunking: Chunking): Promise<PageChunk[]>;
  encodeChunks(page: Buffer, chunks: PageChunk[], codec: CodecSetting): Promise<Buffer[]>;
}

export function chunkPoolFor(keyring: Keyring): ChunkPool {
  const gear = gearTable(keyring.key('name'));
  return {
    async chunkPage(page, chunking) {
      const out: PageChunk[] = [];
      let at = 0;
      for (const length of chunkLengths(page, chunking, gear)) {
        const bytes = page.subarray(at, at + length);
        out.push({ offset: at, length, contentId: isZero(bytes) ? null : await keyring.contentIdAsync(bytes) });
        at += length;
      }
      return out;
    },
    async encodeChunks(page, chunks, codec) {
      const incompressible = looksIncompressible(page);
      return Promise.all(
        chunks.map(async (c) => {
          const plain = page.subarray(c.offset, c.offset + c.length);
          let packed: Buffer | undefined;
          let kind = Codec2.Stored;
          if (!incompressible && codec === 'zstd') {
            const z = await zstdEncode(Buffer.from(plain));
            if (z.length < plain.length) [packed, kind] = [z, Codec2.Zstd];
          } else if (!incompressible && codec === 'lz4') {
            packed = lz4IfSmaller(Buffer.from(plain));
            if (packed) kind = Codec2.Lz4;
          }
          return sealBlock2(kind, packed ?? Buffer.from(plain), plain.length, c.contentId!, keyring);
        }),
      );
    },
  };
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export function workerThreads(): number {
  return 0;
}
export async function closeChunkPools(): Promise<void> {}
