/**
 * THE list of app settings the Pagewise function app reads (#18 infra): name, default, what it is for, which app of a split
 * deployment reads it and who sets it in Azure. infra/main.bicep sets them, infra/README.md documents them, and
 * test/infra.settings.test.ts holds the three together (every setting string in the code is listed here; every listed one
 * is set by the Bicep or optional with its default). A new setting is added here first.
 */

/** Which app of a split deployment reads a setting (infra: the backup app, role `backup`; the prune app, role `prune`); a one-app deployment (`all`) reads both. */
export type SettingApp = 'backup' | 'prune';

/**
 * Who sets it in Azure: `bicep` — infra/main.bicep's Pagewise settings of each app in `apps`; `platform` — the function app
 * module or the host itself (identity connections, Application Insights); `optional` — left unset unless an operator needs it
 * (additionalAppSettings), so it must say its default.
 */
export type SettingSource = 'bicep' | 'platform' | 'optional';

export interface AppSetting {
  readonly name: string;
  /** What applies when it is unset, as an operator reads it; absent: required where it is read. */
  readonly default?: string;
  readonly description: string;
  readonly apps: readonly SettingApp[];
  readonly setBy: SettingSource;
  /** When it matters, if not always. */
  readonly when?: string;
}

const both: readonly SettingApp[] = ['backup', 'prune'];
const backup: readonly SettingApp[] = ['backup'];
const prune: readonly SettingApp[] = ['prune'];

export const APP_SETTINGS = [
  // --- The vault, the key, what the app may reach --------------------------------------------------------------------------
  { name: 'PAGEWISE_VAULT_URL', description: 'The vault container URL (https://<account>.blob.<suffix>/<container>).', apps: both, setBy: 'bicep' },
  { name: 'PAGEWISE_USER_KEY', description: 'The 32-byte user key that encrypts the vault: base64, or a Pagewise key file. In Azure a Key Vault reference.', apps: both, setBy: 'bicep' },
  { name: 'PAGEWISE_ALLOWED_ACCOUNTS', description: 'Storage accounts (names, or endpoint URLs) the app may send requests to: the vault, the sources, restore targets (SSRF guard).', apps: both, setBy: 'bicep' },
  { name: 'PAGEWISE_STORAGE_SUFFIX', default: 'core.windows.net', description: "The cloud's storage DNS suffix: account names in PAGEWISE_ALLOWED_ACCOUNTS mean https://<name>.blob.<suffix>.", apps: both, setBy: 'bicep' },
  { name: 'PAGEWISE_VAULT_CONNECTION_STRING', default: 'unset: the app identity (DefaultAzureCredential)', description: 'A connection string for the vault; only for a local emulator (Azure uses the managed identity).', apps: both, setBy: 'optional', when: 'local / emulator' },
  { name: 'PAGEWISE_APP_ROLE', default: 'all', description: 'What this app registers: all | backup (never deletes from the vault) | prune (forget, undelete, prune).', apps: both, setBy: 'bicep' },
  { name: 'PAGEWISE_AUTH', default: 'keys', description: 'API sign-in: keys (function keys; a key holder has every role) | entra (App Service authentication in front; roles from Entra app roles).', apps: both, setBy: 'bicep', when: 'entra when infra deploys App Service authentication' },
  // --- Engine -----------------------------------------------------------------------------------------------------------------
  { name: 'PAGEWISE_PAGE_SIZE', default: '4194304 (4 MiB)', description: 'Page size in bytes, a multiple of 512.', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_CACHE_BYTES', default: '268435456 (256 MiB)', description: 'Scratch cache capacity per activity, bytes.', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_CONCURRENCY', default: '4', description: 'Pages in flight at once per activity (1–64).', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_BATCHES_IN_FLIGHT', default: '2', description: 'Batch activities of one disk in flight at once (1–32).', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_SCRATCH_DIR', default: 'the OS temporary directory', description: "Scratch directory on the instance's local disk.", apps: both, setBy: 'bicep' },
  { name: 'PAGEWISE_REQUESTS_PER_ACCOUNT', default: '32', description: 'Data requests in flight to one storage account, per process (1–10000).', apps: both, setBy: 'optional' },
  { name: 'PAGEWISE_RESTORE_WINDOW_BYTES', default: '1073741824 (1 GiB)', description: 'Disk bytes one restore or verify window activity handles (512 B – 16 GiB).', apps: backup, setBy: 'optional' },
  { name: 'PAGEWISE_WORKER_THREADS', default: 'min(2, CPUs) compiled; 0 from TypeScript sources', description: 'Worker threads that chunk, compress and encrypt (0–64; 0 = the calling thread).', apps: both, setBy: 'optional' },
  // --- Schedules and policy ---------------------------------------------------------------------------------------------------
  { name: 'PAGEWISE_BACKUP_SCHEDULE', description: 'NCRONTAB (6 fields, UTC) of the backup timer, bound as %PAGEWISE_BACKUP_SCHEDULE%.', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_BACKUP_POLICY', default: 'unset: no scheduled backups', description: 'The backup policy as JSON (disks, VMs, days, retention); or PAGEWISE_POLICY_URL.', apps: both, setBy: 'bicep' },
  { name: 'PAGEWISE_POLICY_URL', default: 'unset: PAGEWISE_BACKUP_POLICY', description: 'A blob holding the backup policy JSON (allow-listed account), instead of the inline setting.', apps: both, setBy: 'optional' },
  { name: 'PAGEWISE_PRUNE_SCHEDULE', description: "NCRONTAB of the prune app's timer (forget by retention, then prune), bound as %PAGEWISE_PRUNE_SCHEDULE%.", apps: prune, setBy: 'bicep', when: 'role prune' },
  { name: 'PAGEWISE_PRUNE_MIN_GRACE_DAYS', default: '7', description: 'The least soft-delete grace a prune grants a forgotten backup, days (0–3650).', apps: prune, setBy: 'optional' },
  { name: 'PAGEWISE_SWEEP_SCHEDULE', description: 'NCRONTAB of the snapshot sweeper (orphan captures deleted, open grants ended).', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_SWEEP_GRACE_HOURS', default: '24', description: 'Hours an orphan capture is kept before the sweeper deletes it (1–720).', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_SWEEP_SCOPES', default: "unset: the subscriptions of the policy's VMs", description: '<subscription>[/<resource group>], comma-separated: where the sweeper lists snapshots.', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_VERIFY_SCHEDULE', default: 'unset: no scheduled verification', description: 'NCRONTAB of the scheduled verification (a rotating sample of backups read and checked each night).', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_VERIFY_BYTES_PER_NIGHT', default: '68719476736 (64 GiB)', description: 'Bytes one scheduled verification night reads at most.', apps: backup, setBy: 'bicep', when: 'PAGEWISE_VERIFY_SCHEDULE set' },
  { name: 'PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT', default: '32', description: 'Verifications one scheduled firing starts at most (1–1000), however many small backups fit the bytes.', apps: backup, setBy: 'bicep', when: 'PAGEWISE_VERIFY_SCHEDULE set' },
  // --- Start budget (#17) -----------------------------------------------------------------------------------------------------
  { name: 'PAGEWISE_START_MODE', default: 'queue', description: "queue (the timer's starts wait in pagewise-backup-starts for a slot) | direct (all at once).", apps: backup, setBy: 'optional' },
  { name: 'PAGEWISE_MAX_RUNNING_BACKUPS', default: '8', description: 'Backups running at once in the task hub (1–1000).', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_MAX_RUNNING_PER_ACCOUNT', default: '4', description: 'Of those, at once per storage account of the source disks (1–1000).', apps: backup, setBy: 'bicep' },
  { name: 'PAGEWISE_START_DEFER_SECONDS', default: '60', description: 'How long a start without a slot waits before it asks again (1–3600).', apps: backup, setBy: 'optional' },
  { name: 'PAGEWISE_START_RECORD_DAYS', default: '30', description: 'Days failed/poisoned start records stay listed (1–3650).', apps: backup, setBy: 'optional' },
  // --- Events, snapshots and VMs ----------------------------------------------------------------------------------------------
  { name: 'PAGEWISE_WATCHED_CONTAINERS', default: 'unset: no container watched', description: 'Containers ([account/]container, comma-separated) whose new page blobs the diskEvents function backs up.', apps: backup, setBy: 'bicep', when: 'blob events' },
  { name: 'PAGEWISE_EVENT_QUIET_SECONDS', default: '300', description: 'A new page blob must stay unchanged this long before its backup starts.', apps: backup, setBy: 'optional', when: 'blob events' },
  { name: 'PAGEWISE_EVENT_MAX_WAIT_SECONDS', default: '86400', description: 'Give up (no backup) on a page blob that has not settled by then.', apps: backup, setBy: 'optional', when: 'blob events' },
  { name: 'PAGEWISE_SNAPSHOT_GRANT_MINUTES', default: "unset: from the snapshot's size (1 h + read time at 64 MiB/s, 1–24 h)", description: 'Length of a snapshot read grant, minutes (15–1440).', apps: backup, setBy: 'optional', when: 'managed disks' },
  { name: 'PAGEWISE_VM_DISK_CONCURRENCY', default: '4', description: 'Disks of one VM backed up at once (1–16).', apps: backup, setBy: 'optional', when: 'VM backups' },
  { name: 'PAGEWISE_ARM_ENDPOINT', default: 'https://management.azure.com', description: 'Azure Resource Manager endpoint (a sovereign cloud).', apps: backup, setBy: 'optional', when: 'managed disks / VMs' },
  { name: 'PAGEWISE_ARM_TOKEN', default: "unset: the app's identity", description: 'A pre-acquired ARM bearer token (automation and tests only; never in Azure).', apps: backup, setBy: 'optional', when: 'tests' },
  { name: 'PAGEWISE_ARM_POLL_MS', default: "unset: the SDK's (2 s)", description: "Poll interval of Compute's long-running operations when it gives no Retry-After (10–60000).", apps: backup, setBy: 'optional', when: 'managed disks / VMs' },
  // --- Telemetry ----------------------------------------------------------------------------------------------------------------
  { name: 'PAGEWISE_TELEMETRY_DEPENDENCY_SAMPLING', default: '1', description: 'Percent (0–100) of storage dependency telemetry items kept; the rest are counted per operation as metrics.', apps: both, setBy: 'bicep' },
  // The Application Insights SDK's own variables: the app sets them when unset (functions/telemetry.ts), an operator may override.
  { name: 'APPLICATION_INSIGHTS_NO_STATSBEAT', default: 'true (set by the app when unset)', description: "No statsbeat (the SDK's telemetry about itself) to Microsoft.", apps: both, setBy: 'optional' },
  { name: 'OTEL_NODE_RESOURCE_DETECTORS', default: 'env,host,os,azure_functions,azure_app_service (set by the app when unset)', description: 'OpenTelemetry resource detectors: the environment only, no instance-metadata calls.', apps: both, setBy: 'optional' },
  // --- Set by the platform or the function app module ---------------------------------------------------------------------------
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', default: 'unset: no telemetry', description: 'Application Insights of the app (events, metrics, the alerts).', apps: both, setBy: 'platform' },
  { name: 'AzureWebJobsStorage', description: 'The host storage (task hub, start queue, slots); in Azure the identity-based AzureWebJobsStorage__accountName.', apps: both, setBy: 'platform' },
  { name: 'WEBSITE_SITE_NAME', default: 'set by App Service itself on every app', description: 'With PAGEWISE_AUTH=entra it tells the app it runs on App Service (functions/auth/principal.ts).', apps: both, setBy: 'optional' },
  { name: 'WEBSITE_AUTH_ENABLED', default: 'set by App Service itself (True) when App Service authentication is on', description: 'PAGEWISE_AUTH=entra on App Service refuses every call (503) without it: a principal header could be forged.', apps: both, setBy: 'optional' },
  { name: 'AZURE_CLIENT_ID', default: 'unset: the system-assigned identity', description: "The user-assigned identity's client ID DefaultAzureCredential uses (the prune app).", apps: prune, setBy: 'platform' },
] as const satisfies readonly AppSetting[];

export type AppSettingName = (typeof APP_SETTINGS)[number]['name'];

/**
 * Environment variables only the CLI and local tools read (never app settings): the connection strings a command line uses
 * for its locations and the local engine's task hub, debugging output, explicitly trusted endpoints.
 */
export const CLI_ENVIRONMENT = [
  { name: 'PAGEWISE_SOURCE_CONNECTION_STRING', description: 'Source page blobs, when the URL carries no SAS.' },
  { name: 'PAGEWISE_TARGET_CONNECTION_STRING', description: 'Restore targets, when the URL carries no SAS.' },
  { name: 'PAGEWISE_TASKHUB_CONNECTION_STRING', description: "The local engine's task hub (default: the vault's connection string)." },
  { name: 'PAGEWISE_STORAGE_ENDPOINTS', description: 'Storage endpoints (e.g. an emulator) the CLI may reach besides Azure.' },
  { name: 'PAGEWISE_DEBUG', description: '1: print the stack of an unexpected error.' },
] as const;

const byName = new Map<string, AppSetting>(APP_SETTINGS.map((s) => [s.name, s]));

/** The listed setting of that name; undefined when the code reads a setting nobody listed (a test makes that a failure). */
export function appSetting(name: string): AppSetting | undefined {
  return byName.get(name);
}
