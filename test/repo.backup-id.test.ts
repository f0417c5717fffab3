/**
 * The backup-ID rules (core/repo/backup-id.ts): the pattern a given ID must match — the same one the
 * HTTP schemas and the activities use — and "given, else derived".
 */
import { BACKUP_ID_RE, backupIdFor, givenOrDerivedBackupId, validateBackupId } from '../core';

const source = { account: 'acct', container: 'disks', blob: 'vm1.vhd', snapshot: '', etag: '"0x1"' };

const cases: Array<{ id: string; valid: boolean; why: string }> = [
  {
    id: 'pw-0123456789abcdef01234567',
    valid: true,
    why: 'derived: pw- and 24 hex digits',
  },
  {
    id: 'nightly-vm1',
    valid: true,
    why: 'a name the user gave',
  },
  {
    id: 'vm1-',
    valid: true,
    why: 'a trailing dash: earlier versions accepted it, so such a backup may exist and must stay nameable',
  },
  {
    id: 'ab',
    valid: false,
    why: 'shorter than 3',
  },
  {
    id: `a${'b'.repeat(63)}`,
    valid: false,
    why: 'longer than 63',
  },
  {
    id: '-vm1',
    valid: false,
    why: 'a leading dash',
  },
  {
    id: 'VM1',
    valid: false,
    why: 'upper case',
  },
  {
    id: 'vm1/../x',
    valid: false,
    why: 'a path',
  },
];

test.each(cases)('$id: valid $valid ($why)', ({ id, valid }) => {
  expect(BACKUP_ID_RE.test(id)).toBe(valid);
  if (valid) expect(validateBackupId(id)).toBe(id);
  else expect(() => validateBackupId(id)).toThrow(`"${id}" is not a backup ID (expected pw- and 24 hex digits, or 3–63 lowercase letters, digits and dashes)`);
});

test('a given ID is used (after its check); without one the ID is derived from the disk state and page size', () => {
  expect(givenOrDerivedBackupId('nightly-vm1', source, 4096)).toBe('nightly-vm1');
  expect(givenOrDerivedBackupId(undefined, source, 4096)).toBe(backupIdFor(source, 4096));
  expect(givenOrDerivedBackupId(undefined, source, 4096)).toMatch(/^pw-[0-9a-f]{24}$/);
  expect(() => givenOrDerivedBackupId('Bad_ID', source, 4096)).toThrow(/"Bad_ID" is not a backup ID/);
});
