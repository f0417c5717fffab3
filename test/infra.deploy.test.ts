/**
 * #18 infra: what a first deployment must have, read from the Bicep as text (test/harness/infra-text.ts: the Bicep compiler
 * cannot be installed here, so these are text-level checks, not a build): the alerts, the vault's redundancy and recovery,
 * the Key Vault's protection of the user key, App Service authentication with PAGEWISE_AUTH=entra, the Node version,
 * the README's deployment package (portal/ included).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ROLE_VALUES } from './harness/entra-roles';
import { declaration, infraText, settingsBlock, slice } from './harness/infra-text';

const main = infraText('main.bicep');
const alerts = infraText('modules/alerts.bicep');
const functionApp = infraText('modules/function-app.bicep');
const readme = infraText('README.md');

/** The rules of alerts.bicep, as name → query text. */
function alertRules(): Map<string, string> {
  const rules = new Map<string, string>();
  for (const m of slice(alerts, 'var rules = [', 'resource alertRules').matchAll(/name: '\$\{namePrefix\}-([a-z0-9-]+)'[\s\S]*?query: '''([\s\S]*?)'''/g)) rules.set(m[1], m[2]);
  return rules;
}

describe('alerts', () => {
  test('three log search alerts on Application Insights, with the queries SPEC18 names', () => {
    const rules = alertRules();
    expect([...rules.keys()]).toEqual(['backup-failed', 'backup-missing-26h', 'verify-failed']);
    expect(rules.get('backup-failed')).toMatch(/customEvents\s*\| where name in \("PagewiseBackupFailed", "PagewiseVmBackupFailed"\)/);
    const missing = rules.get('backup-missing-26h')!;
    expect(missing).toMatch(/where timestamp > ago\(7d\)/);
    expect(missing).toMatch(/where name == "PagewiseBackupCompleted"/);
    expect(missing).toMatch(/summarize lastSuccess = max\(timestamp\) by disk/);
    expect(missing).toMatch(/where lastSuccess < ago\(26h\)/);
    const verify = rules.get('verify-failed')!;
    expect(verify).toMatch(/where name == "PagewiseVerifyFailed"/);
    expect(verify).toMatch(/where tostring\(customDimensions\.trigger\) == "timer"/);
    // Every query names the disk (the alert's dimension) and no rule reads anything that could carry a secret.
    for (const query of rules.values()) {
      expect(query).toMatch(/disk/);
      expect(query).not.toMatch(/sig=|AccountKey|url\b/i);
    }
    // The 26-hour rule looks back 7 days, not just its 1-hour window.
    expect(alerts).toMatch(/overrideQueryTimeRange: 'P7D'/);
  });

  test('each rule is scoped to the Application Insights component, fires on any row, and mails the action group', () => {
    const rule = declaration(alerts, 'resource', 'alertRules');
    expect(rule).toMatch(/'Microsoft\.Insights\/scheduledQueryRules@[\d-]+(-preview)?'/);
    expect(rule).toMatch(/kind: 'LogAlert'/);
    expect(rule).toMatch(/scopes: \[\s*appInsightsId\s*\]/);
    expect(rule).toMatch(/timeAggregation: 'Count'[\s\S]*operator: 'GreaterThan'[\s\S]*threshold: 0/);
    expect(rule).toMatch(/actionGroups: \[\s*actionGroup\.id\s*\]/);
    const group = declaration(alerts, 'resource', 'actionGroup');
    expect(group).toMatch(/emailReceivers: \[[\s\S]*emailAddress: alertEmail/);
    // main.bicep: the email is a required parameter and the module gets the app's Application Insights.
    expect(main).toMatch(/^param alertEmail string$/m);
    const module = declaration(main, 'module', 'alerts');
    expect(module).toMatch(/appInsightsId: monitoring\.outputs\.appInsightsId/);
    expect(module).toMatch(/alertEmail: alertEmail/);
    expect(infraText('modules/monitoring.bicep')).toMatch(/output appInsightsId string = appInsights\.id/);
  });
});

describe('the vault and the user key', () => {
  test('vault account: GZRS by default, blob versioning on, blob and container soft delete, previous versions expire', () => {
    expect(main).toMatch(/param vaultStorageSku string = 'Standard_GZRS'/);
    expect(main).toMatch(/param vaultVersioningEnabled bool = true/);
    const vault = infraText('modules/vault-storage.bicep');
    const blobService = declaration(vault, 'resource', 'blobService');
    expect(blobService).toMatch(/isVersioningEnabled: versioningEnabled \|\| immutable/);
    expect(blobService).toMatch(/deleteRetentionPolicy: \{\s*enabled: true\s*days: softDeleteDays\s*allowPermanentDelete: false/);
    expect(blobService).toMatch(/containerDeleteRetentionPolicy: \{\s*enabled: true\s*days: softDeleteDays/);
    expect(declaration(vault, 'resource', 'lifecycle')).toMatch(/version: \{\s*delete: \{\s*daysAfterCreationGreaterThan: versionRetentionDays/);
    const account = declaration(vault, 'resource', 'account');
    expect(account).toMatch(/allowBlobPublicAccess: false/);
    expect(account).toMatch(/minimumTlsVersion: 'TLS1_2'/);
  });

  test('Key Vault: soft delete and purge protection, RBAC, holding the user key the apps read by reference', () => {
    const kv = infraText('modules/key-vault.bicep');
    expect(kv).toMatch(/enableSoftDelete: true/);
    expect(kv).toMatch(/enablePurgeProtection: true/);
    expect(kv).toMatch(/enableRbacAuthorization: true/);
    expect(declaration(kv, 'resource', 'secret')).toMatch(/parent: vault\s*name: secretName/);
    expect(main).toMatch(/var userKeySecretName = 'pagewise-user-key'/);
    for (const app of ['backup', 'prune'] as const) expect(settingsBlock(main, app).text).toMatch(/PAGEWISE_USER_KEY: '@Microsoft\.KeyVault\(SecretUri=\$\{userKeySecretUri\}\)'/);
  });
});

describe('App Service authentication', () => {
  test('authsettingsV2: Entra ID, sign-in required, the app registration given as a parameter, on both apps', () => {
    const auth = declaration(functionApp, 'resource', 'authSettings');
    expect(auth).toMatch(/'Microsoft\.Web\/sites\/config@[\d-]+' = if \(!empty\(entraClientId\)\)/);
    expect(auth).toMatch(/name: 'authsettingsV2'/);
    expect(auth).toMatch(/requireAuthentication: true/);
    expect(auth).toMatch(/azureActiveDirectory: \{\s*enabled: true/);
    expect(auth).toMatch(/clientId: entraClientId/);
    expect(auth).toMatch(/openIdIssuer: '\$\{environment\(\)\.authentication\.loginEndpoint\}\$\{entraTenantId\}\/v2\.0'/);
    // Event Grid's webhook stays reachable (its system key guards it); nothing else is excluded.
    expect(auth).toMatch(/excludedPaths: \[\s*'\/runtime\/webhooks\/eventgrid'\s*\]/);
    for (const app of ['functionApp', 'pruneApp']) expect(declaration(main, 'module', app)).toMatch(/entraClientId: entraClientId/);
    expect(main).toMatch(/^param entraClientId string = ''$/m);
  });

  test('PAGEWISE_AUTH is entra exactly when authentication is deployed; the README documents the four app roles', () => {
    expect(main).toMatch(/var authMode = empty\(entraClientId\) \? 'keys' : 'entra'/);
    expect(declaration(functionApp, 'resource', 'authSettings')).toMatch(/= if \(!empty\(entraClientId\)\)/);
    expect(ROLE_VALUES).toEqual(['Pagewise.Reader', 'Pagewise.Operator', 'Pagewise.Restorer', 'Pagewise.Admin']);
    for (const value of ROLE_VALUES) expect(readme).toContain(`"value": "${value}"`);
    expect(readme).toMatch(/az deployment group create/);
    expect(readme).toMatch(/\/api\/portal\//);
  });
});

test('Node: one version parameter, the newest GA on the plans, used by both plan kinds; the README says why', () => {
  expect(main).toMatch(/^param nodeVersion string = '24'$/m);
  expect(functionApp).toMatch(/linuxFxVersion: 'Node\|\$\{nodeVersion\}'/);
  expect(functionApp).toMatch(/runtime: \{\s*name: 'node'\s*version: nodeVersion\s*\}/);
  expect(`${main}${functionApp}`).not.toMatch(/Node\|20|version: '20'/);
  expect(readme).toMatch(/## Node version/);
});

test("the README's zip package holds what the app reads at run time — portal/ too — and is the command docs/PORTAL.md gives", () => {
  const zips = [...readme.matchAll(/^zip -qr pagewise\.zip (.+)$/gm)].map((m) => m[1].trim().split(/\s+/));
  expect(zips).toEqual([['host.json', 'package.json', 'dist', 'portal', 'node_modules']]);
  const portalDoc = readFileSync(path.join(__dirname, '..', 'docs', 'PORTAL.md'), 'utf8');
  expect(portalDoc).toContain(`zip -qr pagewise.zip ${zips[0].join(' ')}`);
  // Each top-level entry but the build's output and the install exists in the repository.
  for (const entry of zips[0].filter((e) => e !== 'dist' && e !== 'node_modules')) expect([entry, existsSync(path.join(__dirname, '..', entry))]).toEqual([entry, true]);
});
