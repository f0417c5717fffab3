/**
 * #18 infra: the one list of app settings (functions/appSettings.ts) against the code and the Bicep, and every function
 * the Bicep names against what the app registers. Text-level for the Bicep (test/harness/infra-text.ts: no Bicep compiler
 * can be installed here); the app side is real: functions/index.ts loaded, its registrations read from runtime/functionsCore.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { APP_SETTINGS, CLI_ENVIRONMENT, appSetting } from '../functions/appSettings';
import type { SettingApp } from '../functions/appSettings';
import type { RegisteredFunction } from '../runtime/functionsCore';
import { BATCHES_IN_FLIGHT, REQUESTS_PER_ACCOUNT, RESTORE_WINDOW_BYTES, GiB } from '../core';
import { DEFAULT_PRUNE_MIN_GRACE_DAYS, DEFAULT_VERIFY_MAX_STARTS_PER_NIGHT } from '../functions/settings';
import { MAX_RUNNING_BACKUPS, MAX_RUNNING_PER_ACCOUNT, START_DEFER_SECONDS, START_RECORD_DAYS } from '../functions/startBudget';
import { DEFAULT_SWEEP_GRACE_HOURS } from '../functions/sweepSnapshots';
import { DEFAULT_MAX_WAIT_SECONDS, DEFAULT_QUIET_SECONDS } from '../functions/events/settleSettings';
import { DEFAULT_VM_DISK_CONCURRENCY } from '../orchestrations/vmContracts';
import { declaration, infraText, settingsBlock } from './harness/infra-text';

const root = path.join(__dirname, '..');
const main = infraText('main.bicep');
const functionApp = infraText('modules/function-app.bicep');

/** The functions one role of the app registers: functions/index.ts loaded afresh with PAGEWISE_APP_ROLE. */
function registeredBy(role: 'all' | 'backup' | 'prune'): ReadonlyMap<string, RegisteredFunction> {
  let functions: ReadonlyMap<string, RegisteredFunction> = new Map();
  const saved = process.env.PAGEWISE_APP_ROLE;
  process.env.PAGEWISE_APP_ROLE = role;
  try {
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('../functions/index');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      functions = new Map((require('../runtime/functionsCore') as typeof import('../runtime/functionsCore')).registeredFunctions());
    });
  } finally {
    if (saved === undefined) delete process.env.PAGEWISE_APP_ROLE;
    else process.env.PAGEWISE_APP_ROLE = saved;
  }
  return functions;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) return name === 'node_modules' ? [] : sourceFiles(file);
    return file.endsWith('.ts') && !file.endsWith('.d.ts') ? [file] : [];
  });
}

const code = ['core', 'functions', 'orchestrations', 'runtime', 'cli'].flatMap((d) => sourceFiles(path.join(root, d)));

describe('Event Grid and timers: the Bicep names functions the app registers', () => {
  const backupApp = registeredBy('backup');
  const pruneApp = registeredBy('prune');

  test('the event subscriptions deliver to diskEvents, the Event Grid function the backup app registers', () => {
    const named = /var diskEventsFunctionName = '([A-Za-z0-9_]+)'/.exec(main)?.[1];
    expect(named).toBe('diskEvents');
    const fn = backupApp.get('diskEvents');
    expect(fn?.trigger.type).toBe('eventGridTrigger');
    // Both subscriptions go there (snapshot writes and new page blobs); no other function name is built.
    const targets = [...main.matchAll(/functionResourceId: '\$\{functionApp\.outputs\.id\}\/functions\/\$\{(\w+)\}'/g)].map((m) => m[1]);
    expect(targets).toEqual(['diskEventsFunctionName', 'diskEventsFunctionName']);
    expect(main).not.toMatch(/snapshotCreated|blobCreated|snapshotFunctionName|blobFunctionName/);
    // The filters are the event types diskEvents acts on (functions/events/diskEvents.ts).
    expect(infraText('modules/snapshot-events.bicep')).toMatch(/'Microsoft\.Resources\.ResourceWriteSuccess'[\s\S]*'Microsoft\.Compute\/snapshots\/write'/);
    expect(infraText('modules/blob-events.bicep')).toMatch(/'Microsoft\.Storage\.BlobCreated'[\s\S]*'PageBlob'/);
  });

  test("every timer's %SETTING% schedule is a listed setting the Bicep sets for the app that registers the timer", () => {
    const checked: string[] = [];
    for (const [app, registered] of [['backup', backupApp], ['prune', pruneApp]] as const) {
      const block = settingsBlock(main, app);
      for (const fn of registered.values()) {
        if (fn.trigger.type !== 'timerTrigger') continue;
        const setting = /^%(\w+)%$/.exec(String(fn.trigger.schedule))?.[1];
        expect(setting).toBeDefined(); // a schedule in code could not be changed without a release
        expect(appSetting(setting!)?.apps).toContain(app);
        expect(block.keys).toContain(setting);
        checked.push(`${app}:${fn.metadata.name}:${setting}`);
      }
    }
    expect(checked).toEqual(expect.arrayContaining(['backup:scheduledBackups:PAGEWISE_BACKUP_SCHEDULE', 'prune:scheduledPrune:PAGEWISE_PRUNE_SCHEDULE']));
  });

  test('a queue trigger binds the host storage connection the platform sets (identity-based)', () => {
    const queues = [...backupApp.values()].filter((fn) => fn.trigger.type === 'queueTrigger');
    expect(queues.length).toBeGreaterThan(0);
    for (const fn of queues) expect(fn.trigger.connection ?? 'AzureWebJobsStorage').toBe('AzureWebJobsStorage');
    expect(functionApp).toMatch(/name: 'AzureWebJobsStorage__accountName'/);
  });
});

describe('the one list of app settings', () => {
  const listed = new Set<string>([...APP_SETTINGS.map((s) => s.name), ...CLI_ENVIRONMENT.map((s) => s.name)]);

  test('every setting the code reads is listed (PAGEWISE_* anywhere in the source, and every other env name it reads)', () => {
    const constants = new Set<string>();
    const read = new Map<string, string>();
    for (const file of code) {
      const text = readFileSync(file, 'utf8');
      // Tag names and the like are constants named PAGEWISE_*, not settings.
      for (const m of text.matchAll(/\bconst (PAGEWISE_[A-Z0-9_]+)\b/g)) constants.add(m[1]);
      for (const m of text.matchAll(/\bPAGEWISE_[A-Z0-9_]+\b/g)) read.set(m[0], path.relative(root, file));
      for (const m of text.matchAll(/process\.env\.([A-Za-z_][A-Za-z0-9_]*)/g)) read.set(m[1], path.relative(root, file));
      for (const m of text.matchAll(/\benv\[['"`]([A-Za-z_][A-Za-z0-9_]*)['"`]\]/g)) read.set(m[1], path.relative(root, file));
      for (const m of text.matchAll(/\b[A-Z_]+(?:SETTING|CONNECTION|VARIABLE|_ENV)\b = '([A-Za-z_][A-Za-z0-9_]*)'/g)) read.set(m[1], path.relative(root, file));
    }
    const unlisted = [...read].filter(([name]) => !constants.has(name) && !listed.has(name));
    expect(unlisted).toEqual([]);
    // The scan found what it is for: the schedule constants, the host storage connection, telemetry's connection string.
    for (const name of ['PAGEWISE_BACKUP_SCHEDULE', 'PAGEWISE_SWEEP_GRACE_HOURS', 'AzureWebJobsStorage', 'APPLICATIONINSIGHTS_CONNECTION_STRING', 'PAGEWISE_WORKER_THREADS']) expect(read.has(name)).toBe(true);
  });

  test('every listed setting is set by the Bicep for each app that reads it, set by the platform, or optional with its default', () => {
    const blocks: Record<SettingApp, string[]> = { backup: settingsBlock(main, 'backup').keys, prune: settingsBlock(main, 'prune').keys };
    for (const setting of APP_SETTINGS) {
      const where = `${setting.name} (${setting.setBy})`;
      if (setting.setBy === 'bicep') {
        for (const app of setting.apps) expect(`${where} in ${app}: ${blocks[app].includes(setting.name)}`).toBe(`${where} in ${app}: true`);
      } else if (setting.setBy === 'platform') {
        expect(`${where}: ${functionApp.includes(`name: '${setting.name}`)}`).toBe(`${where}: true`);
      } else {
        const text: string = 'default' in setting ? setting.default : '';
        expect(`${where} default: ${text.length > 0}`).toBe(`${where} default: true`);
      }
      // Required (no default) is never left to chance.
      if (!('default' in setting)) expect(setting.setBy).not.toBe('optional');
    }
    // And the other way: the Bicep sets no PAGEWISE_* the list does not know.
    const setByBicep = [...blocks.backup, ...blocks.prune].filter((k) => k.startsWith('PAGEWISE_'));
    expect(setByBicep.filter((k) => appSetting(k)?.setBy !== 'bicep')).toEqual([]);
  });

  test("the listed defaults are the code's", () => {
    const defaultOf = (name: string) => (appSetting(name) as { default?: string } | undefined)?.default ?? '';
    const expected: Record<string, number> = {
      PAGEWISE_BATCHES_IN_FLIGHT: BATCHES_IN_FLIGHT.default,
      PAGEWISE_REQUESTS_PER_ACCOUNT: REQUESTS_PER_ACCOUNT.default,
      PAGEWISE_RESTORE_WINDOW_BYTES: RESTORE_WINDOW_BYTES.default,
      PAGEWISE_PRUNE_MIN_GRACE_DAYS: DEFAULT_PRUNE_MIN_GRACE_DAYS,
      PAGEWISE_MAX_RUNNING_BACKUPS: MAX_RUNNING_BACKUPS.default,
      PAGEWISE_MAX_RUNNING_PER_ACCOUNT: MAX_RUNNING_PER_ACCOUNT.default,
      PAGEWISE_START_DEFER_SECONDS: START_DEFER_SECONDS.default,
      PAGEWISE_START_RECORD_DAYS: START_RECORD_DAYS.default,
      PAGEWISE_SWEEP_GRACE_HOURS: DEFAULT_SWEEP_GRACE_HOURS,
      PAGEWISE_EVENT_QUIET_SECONDS: DEFAULT_QUIET_SECONDS,
      PAGEWISE_EVENT_MAX_WAIT_SECONDS: DEFAULT_MAX_WAIT_SECONDS,
      PAGEWISE_VM_DISK_CONCURRENCY: DEFAULT_VM_DISK_CONCURRENCY,
      PAGEWISE_VERIFY_BYTES_PER_NIGHT: 64 * GiB,
      PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT: DEFAULT_VERIFY_MAX_STARTS_PER_NIGHT,
    };
    for (const [name, value] of Object.entries(expected)) expect(`${name}=${defaultOf(name).split(' ')[0]}`).toBe(`${name}=${value}`);
  });

  test("SPEC18's new settings are listed and set: PAGEWISE_AUTH, the verify schedule and budget, the dependency sampling", () => {
    expect(appSetting('PAGEWISE_AUTH')).toMatchObject({ default: 'keys', setBy: 'bicep', apps: ['backup', 'prune'] });
    expect(appSetting('PAGEWISE_VERIFY_SCHEDULE')).toMatchObject({ setBy: 'bicep', apps: ['backup'] });
    expect(appSetting('PAGEWISE_TELEMETRY_DEPENDENCY_SAMPLING')).toMatchObject({ default: '1' });
    const backup = settingsBlock(main, 'backup').text;
    expect(backup).toMatch(/PAGEWISE_AUTH: authMode/);
    expect(backup).toMatch(/PAGEWISE_VERIFY_BYTES_PER_NIGHT: string\(verifyBytesPerNight\)/);
    expect(backup).toMatch(/PAGEWISE_TELEMETRY_DEPENDENCY_SAMPLING: string\(telemetryDependencySampling\)/);
    // Off is unset, not an empty NCRONTAB the host could not bind.
    expect(backup).toMatch(/empty\(verifySchedule\) \? \{\} : \{ PAGEWISE_VERIFY_SCHEDULE: verifySchedule \}/);
    expect(main).toMatch(/param verifyBytesPerNight int = 68719476736\b/);
    expect(backup).toMatch(/PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT: string\(verifyMaxStartsPerNight\)/);
    expect(main).toMatch(/param verifyMaxStartsPerNight int = 32\b/);
    expect(main).toMatch(/param telemetryDependencySampling int = 1\b/);
    expect(main).toMatch(/var authMode = empty\(entraClientId\) \? 'keys' : 'entra'/);
    expect(settingsBlock(main, 'prune').text).toMatch(/PAGEWISE_AUTH: authMode/);
  });
});

test('the README documents every app setting of the list', () => {
  const readme = infraText('README.md');
  const missing = APP_SETTINGS.map((s) => s.name).filter((name) => !readme.includes(`\`${name}\``));
  expect(missing).toEqual([]);
});

// Keeps a typo in a module name from silently making `declaration` find nothing.
test('main.bicep declares the modules the tests read', () => {
  for (const name of ['functionApp', 'pruneApp', 'snapshotEvents', 'blobEvents', 'alerts']) expect(declaration(main, 'module', name).length).toBeGreaterThan(20);
});
