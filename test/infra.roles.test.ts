/**
 * The Bicep against the code (issue #13): the backup app's custom vault role grants no delete, each app's
 * PAGEWISE_APP_ROLE is a role the code knows, and every timer's schedule setting the code binds is set for
 * the app that registers it. Static: the templates are read as text (no Bicep compiler here).
 */
import { readdirSync, readFileSync } from 'node:fs';
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

/*
 * #18 infra: least privilege, text-level (test/harness/infra-text.ts — no Bicep compiler here). Every role definition the
 * templates assign is one of the few the code needs, each on the narrowest scope the code works with.
 */
describe('#18: role assignments are the least the code needs', () => {
  const modules = ['main.bicep', ...readdirSync(path.join(__dirname, '..', 'infra', 'modules')).map((f) => `modules/${f}`)];
  const all = modules.map((f) => infra(f)).join('\n');
  // What each built-in role is for (docs in infra/README.md "Role assignments").
  const allowed: Record<string, string> = {
    'b7e6dc6d-f1e8-4753-8033-0f276bb0955b': 'Storage Blob Data Owner — host storage only (Functions host keys, leases; identity-based AzureWebJobsStorage needs it)',
    'ba92f5b4-2d11-453d-a403-e96b0029c9fe': 'Storage Blob Data Contributor — the vault: the one-app deployment, or the prune identity on the container',
    '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1': 'Storage Blob Data Reader — source accounts',
    '974c5e8b-45b9-4653-ba55-5f855dd0fb88': 'Storage Queue Data Contributor — host storage (task hub, start queue)',
    '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3': 'Storage Table Data Contributor — host storage (task hub history)',
    '4633458b-17de-408a-b874-0445c86b69e6': 'Key Vault Secrets User — resolve the PAGEWISE_USER_KEY reference',
    '7efff54f-a5b4-42b5-a1c5-5411624893ce': 'Disk Snapshot Contributor — only when snapshotRoleMode asks for the built-in role',
  };

  test('every role definition GUID in the templates is one of the allowed built-ins; no Owner, Contributor or key/secret admin', () => {
    const guids = new Set([...all.matchAll(/'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'/g)].map((m) => m[1]));
    expect([...guids].filter((g) => !(g in allowed))).toEqual([]);
    expect(guids.size).toBe(Object.keys(allowed).length);
    expect(all).not.toMatch(/\bOwner'|'Contributor'|User Access Administrator|Key Vault (Administrator|Secrets Officer)/);
  });

  test('source accounts: Blob Data Reader only; Key Vault: Secrets User only; host storage: the three the host needs', () => {
    const main = infra('main.bicep');
    const sourceAccess = main.slice(main.indexOf('module sourceAccess'), main.indexOf('module snapshotAccess'));
    expect([...sourceAccess.matchAll(/roleDefinitionIds: \[([^\]]*)\]/g)].map((m) => m[1].trim())).toEqual(['storageBlobDataReader']);
    expect(infra('modules/key-vault-access.bicep')).toMatch(/var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'/);
    expect(infra('modules/key-vault-access.bicep')).toMatch(/scope: vault/);
    for (const module of ['hostStorageAccess', 'pruneHostStorageAccess']) {
      const block = main.slice(main.indexOf(`module ${module} `), main.indexOf('}\n}', main.indexOf(`module ${module} `)));
      expect([...block.matchAll(/^\s+(storage\w+)$/gm)].map((m) => m[1]).sort()).toEqual(['storageBlobDataOwner', 'storageQueueDataContributor', 'storageTableDataContributor']);
    }
    // The prune identity's delete right is on the vault container, not the account.
    expect(infra('modules/vault-container-access.bicep')).toMatch(/scope: container/);
  });

  test('snapshot custom role: reads and the read SAS by default; create/delete and VM capture only when asked', () => {
    const role = infra('modules/snapshot-access.bicep');
    const list = (name: string) => [...role.slice(role.indexOf(`var ${name} = [`), role.indexOf(']', role.indexOf(`var ${name} = [`))).matchAll(/'(Microsoft\.[^']+)'/g)].map((m) => m[1]);
    expect(list('readActions')).toEqual([
      'Microsoft.Compute/snapshots/read',
      'Microsoft.Compute/snapshots/beginGetAccess/action',
      'Microsoft.Compute/snapshots/endGetAccess/action',
      'Microsoft.Compute/disks/read',
    ]);
    expect(list('createActions')).toEqual(['Microsoft.Compute/snapshots/write', 'Microsoft.Compute/snapshots/delete']);
    // VM capture: restore points in Pagewise's collections and their disk SAS; no VM write, no disk write or delete.
    const vm = list('vmCaptureActions');
    expect(vm).toContain('Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints/beginGetAccess/action');
    expect(vm.filter((a) => /virtualMachines\/(write|delete)|disks\/(write|delete)|\*/.test(a))).toEqual([]);
    expect(role).toMatch(/actions: union\(readActions, allowSnapshotCreate \|\| allowVmCapture \? createActions : \[\], allowVmCapture \? vmCaptureActions : \[\]\)/);
    expect(role).not.toMatch(/'\*'|\/\*'/);
    expect(role).toMatch(/assignableScopes: \[\s*resourceGroup\(\)\.id\s*\]/);
    const main = infra('main.bicep');
    expect(main).toMatch(/param snapshotRoleAllowsCreate bool = false/);
    expect(main).toMatch(/param snapshotRoleAllowsVmBackup bool = false/);
  });
});
