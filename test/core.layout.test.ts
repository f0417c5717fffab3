/** Vault layout (core/repo/layout.ts) and backup-ID rules (core/repo/backup-id.ts): block IDs and backup IDs. */
import { blockIdOf } from '../core/repo/layout';
import { backupIdFor, snapshotBackupIdFor, validateBackupId } from '../core/repo/backup-id';

test('IDs: block IDs have one length; backup IDs are stable and validated', () => {
  expect(Buffer.from(blockIdOf(0), 'base64').length).toBe(20);
  expect(blockIdOf(0).length).toBe(blockIdOf(2 ** 40).length);
  const src = { account: 'a', container: 'c', blob: 'b', snapshot: '', etag: '"1"' };
  expect(backupIdFor(src, 4096)).toBe(backupIdFor({ ...src }, 4096));
  expect(backupIdFor(src, 4096)).not.toBe(backupIdFor({ ...src, etag: '"2"' }, 4096));
  // The page size is part of the ID (docs/FORMAT.md §8.1): another page size is another backup.
  expect(backupIdFor(src, 4096)).not.toBe(backupIdFor(src, 8192));
  expect(snapshotBackupIdFor('/subscriptions/S/x', 4096)).toBe(snapshotBackupIdFor('/SUBSCRIPTIONS/s/X', 4096));
  expect(snapshotBackupIdFor('/subscriptions/s/x', 4096)).not.toBe(snapshotBackupIdFor('/subscriptions/s/x', 8192));
  expect(validateBackupId(backupIdFor(src, 4096))).toMatch(/^pw-[0-9a-f]{24}$/);
  expect(() => validateBackupId('../x')).toThrow(/not a backup ID/);
});
