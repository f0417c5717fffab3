/**
 * The Bicep against the code (issue #13): the backup app's custom vault role grants no delete, each app's
 * PAGEWISE_APP_ROLE is a role the code knows, and every timer's schedule setting the code binds is set for
 * the app that registers it. Static: the templates are read as text (no Bicep compiler here).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { APP_ROLES, BACKUP_SCHEDULE_SETTING, PRUNE_SCHEDULE_SETTING } from '../functions/settings';

const infra = (file: string) => readFileSync(path.join(__dirname, '..', 'infra', file), 'utf8');

test('"Pagewise vault writer" reads, writes and appends blobs, and cannot delete', () => {
  const role = infra('modules/vault-writer-role.bicep');
  const granted = [...role.matchAll(/'(Microsoft\.Storage\/[^']+)'/g)].map((m) => m[1]);
  // actions, then dataActions, as the role lists them
  expect(granted).toEqual([
    'Microsoft.Storage/storageAccounts/blobServices/containers/read',
    'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read',
    'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write',
    'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action',
  ]);
  expect(role).not.toMatch(/blobs\/delete|\/\*'/);
});

test('each app runs a role the code knows, with the schedule setting of the timer that role registers', () => {
  const main = infra('main.bicep');
  const roles = [...main.matchAll(/PAGEWISE_APP_ROLE: ([^\n]+)/g)].flatMap((m) => [...m[1].matchAll(/'([a-z]+)'/g)].map((r) => r[1]));
  expect(roles.sort()).toEqual(['all', 'backup', 'prune']);
  for (const role of roles) expect(APP_ROLES).toContain(role);
  // The backup app's settings name its schedule; the prune app's settings (role prune) name the prune schedule.
  const pruneSettings = main.slice(main.indexOf('var pruneSettings'), main.indexOf('var pruneSettingsList'));
  expect(pruneSettings).toMatch(new RegExp(`${PRUNE_SCHEDULE_SETTING}: pruneSchedule`));
  expect(pruneSettings).toMatch(/PAGEWISE_APP_ROLE: 'prune'/);
  expect(pruneSettings).toMatch(/durableTask__hubName: '(?!PagewiseHub')\w+'/); // its own task hub, not host.json's
  const backupSettings = main.slice(main.indexOf('var pagewiseSettings ='), main.indexOf('var pagewiseSettingsList'));
  expect(backupSettings).toMatch(new RegExp(`${BACKUP_SCHEDULE_SETTING}: backupSchedule`));
  // The prune app's identity gets the delete right on the vault container only; the backup app the writer role.
  expect(main).toMatch(/module pruneVaultAccess 'modules\/vault-container-access\.bicep'/);
  expect(main).toMatch(/module vaultWriterAccess 'modules\/vault-container-access\.bicep' = if \(deployPruneApp\)/);
  expect(main).toMatch(/module vaultAccess 'modules\/storage-role-assignments\.bicep' = if \(!deployPruneApp\)/);
});

test('#17: the app may use the host storage queue (start queue) and sets its start budget', () => {
  const main = infra('main.bicep');
  const hostAccess = main.slice(main.indexOf("module hostStorageAccess"), main.indexOf('}\n}', main.indexOf("module hostStorageAccess")));
  expect(hostAccess).toMatch(/storageQueueDataContributor/);
  expect(hostAccess).toMatch(/storageBlobDataOwner/); // slot leases and start records are blobs there
  expect(main).toMatch(/PAGEWISE_MAX_RUNNING_BACKUPS: string\(maxRunningBackups\)/);
  expect(main).toMatch(/PAGEWISE_MAX_RUNNING_PER_ACCOUNT: string\(maxRunningPerAccount\)/);
  expect(infra('modules/function-app.bicep')).toMatch(/AzureWebJobsStorage__accountName/); // functions/startBudget.ts resolves it
});
