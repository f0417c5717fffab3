/** The version-2 block `PWB2` (docs/FORMAT.md §16): one chunk compressed, then sealed under a per-block key. */
import type { Keyring } from './keyring';

export async function encodeBlock2(plain: Buffer, contentId: Buffer, keyring: Keyring): Promise<Buffer> {
  void plain; void contentId; void keyring;
  throw new Error('not yet');
}

export async function decodeBlock2(stored: Buffer, contentId: Buffer, keyring: Keyring, where: string, maxLength?: number): Promise<Buffer> {
  void stored; void contentId; void keyring; void where; void maxLength;
  throw new Error('not yet');
}
