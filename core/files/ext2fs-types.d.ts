/** The part of the `ext2fs` package (libext2fs in WASM, no types of its own) file-level restore uses. */
declare module 'ext2fs' {
  import type { Disk } from 'file-disk';

  export interface Ext2Stats {
    mode: number;
    nlink: number;
    uid: number;
    gid: number;
    ino: number;
    size: number;
    atime: Date;
    mtime: Date;
    ctime: Date;
  }
  /** Its close() does not wait for the close: use Ext2Promises.close(handle.fd). */
  export interface Ext2FileHandle {
    readonly fd: number;
  }
  export interface Ext2Promises {
    /** Names decoded as UTF-8 whatever the options say (invalid bytes become U+FFFD); '.' and '..' left out (a hostile one too). */
    readdir(path: string): Promise<string[]>;
    lstat(path: string): Promise<Ext2Stats>;
    stat(path: string): Promise<Ext2Stats>;
    readlink(path: string): Promise<string>;
    open(path: string, flags: string | number, mode?: number): Promise<Ext2FileHandle>;
    fstat(fd: number): Promise<Ext2Stats>;
    /** Past the end: bytesRead 0 (and `buffer` may be overwritten beyond bytesRead). */
    read(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number; buffer: Buffer }>;
    close(fd: number): Promise<void>;
  }
  export interface Ext2Fs {
    promises: Ext2Promises;
  }
  /** Errors carry the errno's name in `code` ('ENOENT', 'EIO', … or 'UNKNOWN'). */
  export function mount(disk: Disk, offset?: number): Promise<Ext2Fs>;
  export function umount(fs: Ext2Fs): Promise<void>;
}
