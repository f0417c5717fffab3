/**
 * THE table of which role each HTTP function needs (docs/SECURITY.md): every API handler starts with
 * `requireRole(request, ROUTE_ROLES.<its name>)`, and test/auth.routes.test.ts checks every registered
 * HTTP function has an entry (but the portal's static files and /api/me, open to any signed-in caller).
 */
import type { Role } from './roles';

export const ROUTE_ROLES = {
  // reader: every GET of state
  listBackups: 'reader',
  getBackup: 'reader',
  listVmBackups: 'reader',
  getVmBackup: 'reader',
  getRestore: 'reader',
  getVerification: 'reader',
  getPrune: 'reader',
  listStarts: 'reader',
  listBackupFiles: 'reader',
  listOperations: 'reader',
  // operator: starting backups and verifications
  startBackup: 'operator',
  startVmBackup: 'operator',
  startVerification: 'operator',
  // restorer: data leaves the vault
  startRestore: 'restorer',
  downloadBackupFile: 'restorer',
  // admin: what deletes, or undoes a deletion, and who did what
  startPrune: 'admin',
  forgetBackup: 'admin',
  undeleteBackup: 'admin',
  listAudit: 'admin',
} as const satisfies Record<string, Role>;

export type RoutedFunction = keyof typeof ROUTE_ROLES;

/** HTTP functions without a table entry: open to anonymous callers (the portal's files) or to any signed-in one (me). */
export const UNROLED_FUNCTIONS: readonly string[] = ['portal', 'me'];
