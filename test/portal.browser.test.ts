/**
 * The portal in a real browser: Debian chromium driven by playwright-core against a real `pagewise serve` on
 * 127.0.0.1 (Azurite, the local durable runtime). Admin: the one-time sign-in link, a backup started from the
 * page whose progress reaches 100 % and which then appears in the disks list, a verification started from its
 * row, a restore from the row's dialog (the restored blob checked byte for byte); the link used twice opens nothing. No session: the sign-in state. A reader (token typed into the form):
 * the lists, and no start button. No page logs an error (a CSP violation would). Screenshots: test-output/portal/.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Browser, BrowserContext, chromium, Page } from 'playwright-core';
import { ensureTools } from '../testkit/debian-tools';
import type { LocalServer } from '../runtime/serve';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { serveTestApp } from './harness/serve-app';

const SHOTS = path.join(__dirname, '..', 'test-output', 'portal');

let env: TestEnv;
let server: LocalServer;
let browser: Browser;
let sourceUrl: string;
let sourceSha: string;
let backupId = '';
/** Every error a page logged (a CSP violation is one), by test. */
const pageErrors: string[] = [];

beforeAll(async () => {
  // Installs Debian's chromium when missing (as root); otherwise the error names the package to install.
  const { chromium: executablePath } = ensureTools(['chromium']);
  env = await startEnv();
  const disk = await env.makeDisk('portal.vhd', 4 * MiB, [
    { offset: 0, length: 512 * KiB, kind: 'random', seed: 181 },
    { offset: 2 * MiB, length: 256 * KiB, kind: 'text', seed: 182 },
  ]);
  sourceUrl = disk.source.url;
  sourceSha = disk.sha256;
  server = await serveTestApp(env);
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  browser = await chromium.launch({ executablePath, args: root ? ['--no-sandbox'] : [] });
  await fs.mkdir(SHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
  await env?.stop();
});

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('response', (r) => r.status() >= 400 && pageErrors.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`));
  return { context, page };
}

/** The page's errors but the expected ones: the 401 of /api/me that shows the sign-in state, the refused reuse of a sign-in link. */
function unexpectedErrors(): string[] {
  const errors = pageErrors.filter((e) => !/status of 40[13] \(/.test(e) && !/^401 GET \/api\/me$/.test(e) && !/^40[13] POST \/\.auth\/login$/.test(e));
  pageErrors.length = 0;
  return errors;
}

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });

test('without a session the page shows the sign-in state, nothing else', async () => {
  const { context, page } = await newPage();
  await page.goto(`${server.url}/`);
  expect(new URL(page.url()).pathname).toBe('/api/portal/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  expect(await page.getByLabel('Sign-in token').isVisible()).toBe(true);
  expect(await page.locator('#dashboard').isHidden()).toBe(true);
  expect(await page.locator('#who').isHidden()).toBe(true);
  await shot(page, 'signed-out.png');
  await context.close();
  expect(unexpectedErrors()).toEqual([]);
});

test('admin: the sign-in link, a backup started from the page reaches 100 % and is listed, then verified (last verified: ok) and restored', async () => {
  const { context, page } = await newPage();
  await page.goto(server.signInUrl);
  await page.locator('#who-name').waitFor();
  expect(await page.locator('#who-roles').textContent()).toBe('admin');
  expect(new URL(page.url()).hash).toBe(''); // the token left the address bar at once

  await page.getByLabel('Disk URL (page blob)').fill(sourceUrl);
  await page.getByRole('button', { name: 'Start backup' }).click();
  await page.getByRole('status').filter({ hasText: /^Backup pw-[0-9a-f]{24} started\.$/ }).waitFor();
  backupId = /pw-[0-9a-f]{24}/.exec((await page.getByRole('status').textContent()) ?? '')![0];
  expect(await page.getByLabel('Disk URL (page blob)').inputValue()).toBe(''); // it held a SAS

  const row = page.locator('#operations tbody tr', { hasText: backupId });
  await row.filter({ hasText: 'Completed' }).waitFor({ timeout: 60_000 });
  expect(await row.locator('progress').getAttribute('value')).toBe('100');
  expect(await row.locator('td').nth(3).textContent()).toMatch(/ 100\s%$/);
  expect(await row.locator('td').nth(0).textContent()).toBe('Backup');

  // The vault's list: the backup on its disk, full, never verified yet.
  const listed = page.locator(`#backups tbody tr[data-backup="${backupId}"]`);
  await listed.filter({ hasText: 'full' }).waitFor(); // the list may show it 'in progress' until the poll after its end
  const cells = await listed.locator('td, th').allTextContents();
  expect(cells.slice(1, 4)).toEqual([backupId, 'full', '4.00 MiB']);
  expect(cells[6]).toBe('never');
  await shot(page, 'admin-backup-done.png');

  await page.getByRole('button', { name: `Verify backup ${backupId}` }).click();
  await page.getByRole('status').filter({ hasText: new RegExp(`^Verification verify-k?[0-9a-f]{32} of backup ${backupId} started\\.$`) }).waitFor();
  const verifyId = /verify-k?[0-9a-f]{32}/.exec((await page.getByRole('status').textContent()) ?? '')![0];
  await page.locator('#operations tbody tr', { hasText: verifyId }).filter({ hasText: 'Completed' }).waitFor({ timeout: 60_000 });
  expect((await server.app.runtime.waitForCompletion(verifyId, { timeoutInMs: 10_000 })).runtimeStatus).toBe('Completed');
  // Its record is the backup's last verification now (verifysched's lastVerified), shown in the disks list.
  await listed.locator('td.verified-ok', { hasText: /^ok, \d+ (s|min) ago \(http\)$/ }).waitFor({ timeout: 20_000 });
  expect(await page.locator('#failures tbody').textContent()).toBe('No failures.');
  await shot(page, 'admin-verified.png');

  // Restore from its row: the dialog, by keyboard; the restored blob is the disk, byte for byte.
  await page.getByRole('button', { name: `Restore backup ${backupId}` }).click();
  const dialog = page.getByRole('dialog', { name: `Restore backup ${backupId}` });
  await dialog.waitFor();
  await shot(page, 'admin-restore-dialog.png'); // before the URL is typed: no SAS in a screenshot
  await dialog.getByLabel('Target page blob URL').fill(env.targetUrl('portal-restored.vhd'));
  await dialog.getByLabel('Target page blob URL').press('Enter');
  await page.getByRole('status').filter({ hasText: new RegExp(`^Restore restore-k?[0-9a-f]{32} of backup ${backupId} started\\.$`) }).waitFor();
  expect(await dialog.isHidden()).toBe(true);
  const restoreId = /restore-k?[0-9a-f]{32}/.exec((await page.getByRole('status').textContent()) ?? '')![0];
  await page.locator('#operations tbody tr', { hasText: restoreId }).filter({ hasText: 'Completed' }).waitFor({ timeout: 60_000 });
  expect(await env.blobSha256(env.targetUrl('portal-restored.vhd'))).toBe(sourceSha);
  await context.close();

  // The link was for one sign-in: used again it opens nothing.
  const again = await newPage();
  await again.page.goto(server.signInUrl);
  await again.page.getByRole('alert').filter({ hasText: 'This sign-in token is not valid' }).waitFor();
  expect(await again.page.locator('#dashboard').isHidden()).toBe(true);
  await again.context.close();
  expect(unexpectedErrors()).toEqual([]);
});

test('a reader (token typed into the form) sees the lists and no start button', async () => {
  expect(backupId).not.toBe('');
  const { context, page } = await newPage();
  await page.goto(`${server.url}/portal/`);
  await page.getByLabel('Sign-in token').fill(server.loginTokens.reader);
  await page.getByLabel('Sign-in token').press('Enter');
  await page.locator('#who-name').waitFor();
  expect(await page.locator('#who-roles').textContent()).toBe('reader');
  await page.locator(`#backups tbody tr[data-backup="${backupId}"]`).waitFor();
  await page.locator('#operations tbody tr', { hasText: backupId }).waitFor();
  expect(await page.locator('#start-backup').isHidden()).toBe(true);
  expect(await page.getByRole('button', { name: /^(Start backup|Verify backup|Restore backup)/ }).count()).toBe(0);
  expect(await page.locator('#operations tbody tr').count()).toBe(3); // the backup, its verification and its restore
  for (const id of ['operations-error', 'disks-error', 'vms-error', 'failures-error']) expect(await page.locator(`#${id}`).textContent()).toBe('');
  await shot(page, 'reader.png');
  await context.close();
  expect(unexpectedErrors()).toEqual([]);
});
