/** Blob names of the vault layout (docs/FORMAT.md §2) and the block ID rule; backup IDs are in backup-id.ts. */

export const VAULT_MARKER = 'pagewise-vault.json';

const pad8 = (n: number) => String(n).padStart(8, '0');

export const layout = {
  backupPrefix: (id: string) => `backups/${id}/`,
  plan: (id: string) => `backups/${id}/plan.json`,
  batch: (id: string, batch: number) => `backups/${id}/batches/${pad8(batch)}.json`,
  segment: (id: string, segment: number) => `backups/${id}/segments/${pad8(segment)}.seg`,
  index: (id: string, segment: number) => `backups/${id}/index/${pad8(segment)}.pwi`,
  manifest: (id: string) => `backups/${id}/manifest.json`,
};

/** Block ID of the block staged by page `page`: base64("pw1-" + 16-digit page index). */
export function blockIdOf(page: number): string {
  return Buffer.from(`pw1-${String(page).padStart(16, '0')}`, 'ascii').toString('base64');
}
