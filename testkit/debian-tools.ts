/** The Debian tools the file-system tests run (mkfs, debugfs, sfdisk…): found, or installed with apt-get once. */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type DebianTool = 'mkfs.ext4' | 'debugfs' | 'sfdisk' | 'mkntfs' | 'mkfs.xfs' | 'cryptsetup' | 'mkswap' | 'mkfs.vfat' | 'qemu-img' | 'openssl' | 'chromium';

/** The Debian (bookworm) package that ships each tool. */
export const TOOL_PACKAGES: Readonly<Record<DebianTool, string>> = {
  'mkfs.ext4': 'e2fsprogs',
  debugfs: 'e2fsprogs',
  sfdisk: 'fdisk',
  mkntfs: 'ntfs-3g',
  'mkfs.xfs': 'xfsprogs',
  cryptsetup: 'cryptsetup-bin',
  mkswap: 'util-linux',
  'mkfs.vfat': 'dosfstools',
  'qemu-img': 'qemu-utils', // an independent reader of the VHD footers a managed-disk restore writes
  openssl: 'openssl', // the Compute stand-in's TLS certificate (test/global-setup.ts)
  chromium: 'chromium', // the browser the portal's test drives (test/portal.browser.test.ts, #18)
};

export const TOOL_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

/** Where a tool is, or undefined. */
export function findTool(name: string): string | undefined {
  for (const dir of TOOL_DIRS) {
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

// Packages this process already tried to install: apt runs at most once per package per process.
const attempted = new Set<string>();

/**
 * The absolute path of each tool; missing ones are installed with `apt-get install -y --no-install-recommends`
 * (as root, where apt-get exists), `apt-get update` only if the first install fails. Throws naming the package
 * when a tool cannot be had.
 */
export function ensureTools<T extends DebianTool>(names: T[]): { [K in T]: string } {
  const missing = names.filter((name) => !findTool(name));
  const packages = [...new Set(missing.map((name) => TOOL_PACKAGES[name]))].filter((pkg) => !attempted.has(pkg));
  if (packages.length > 0) {
    for (const pkg of packages) attempted.add(pkg);
    installPackages(packages);
  }
  const found = {} as { [K in T]: string };
  for (const name of names) {
    const at = findTool(name);
    if (!at) {
      throw new Error(`${name} is not installed and could not be installed: install the Debian package ${TOOL_PACKAGES[name]} (apt-get install ${TOOL_PACKAGES[name]})`);
    }
    found[name] = at;
  }
  return found;
}

function installPackages(packages: string[]): void {
  const aptGet = findTool('apt-get');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!aptGet || !isRoot) return; // ensureTools then names the package to install by hand
  withInstallLock(() => {
    // Another jest worker may have installed them while this one waited for the lock.
    const still = packages.filter((pkg) => !installedPackage(pkg));
    if (still.length === 0) return;
    const install = (): void => {
      execFileSync(aptGet, ['install', '-y', '--no-install-recommends', ...still], {
        stdio: 'pipe',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        timeout: 10 * 60_000,
      });
    };
    try {
      install();
    } catch {
      try {
        execFileSync(aptGet, ['update'], { stdio: 'pipe', timeout: 10 * 60_000 }); // package lists may be stale or absent
        install();
      } catch (err) {
        const detail = err instanceof Error ? err.message.split('\n').slice(-3).join(' ') : String(err);
        throw new Error(`apt-get install ${still.join(' ')} failed: ${detail}`);
      }
    }
  });
}

function installedPackage(pkg: string): boolean {
  try {
    const status = execFileSync('dpkg-query', ['-W', '-f=${Status}', pkg], { stdio: 'pipe' }).toString();
    return status.includes('install ok installed');
  } catch {
    return false;
  }
}

export const INSTALL_LOCK = path.join(os.tmpdir(), 'pagewise-debian-tools.lock');

/** Runs `fn` holding a lock file (O_EXCL) so that parallel jest workers never run apt-get at the same time. */
export function withInstallLock<R>(fn: () => R, lockPath = INSTALL_LOCK, waitMs = 15 * 60_000): R {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (holderGone(lockPath)) {
        try {
          unlinkSync(lockPath);
        } catch {
          /* another waiter removed it first */
        }
        continue;
      }
      if (Date.now() > deadline) throw new Error(`waited ${waitMs / 1000} s for ${lockPath} (another process installing Debian packages)`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200); // a synchronous sleep: ensureTools is synchronous
    }
  }
  try {
    return fn();
  } finally {
    try {
      unlinkSync(lockPath);
    } catch {
      /* already gone */
    }
  }
}

/** A lock whose writer process no longer runs is stale (a killed worker must not block the others forever). */
function holderGone(lockPath: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(lockPath, 'utf8'));
  } catch {
    return false; // being written right now, or just removed: look again
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
