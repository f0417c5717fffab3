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
  export interface Ext2FileHandle {
    read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number; buffer: Buffer }>;
    stat(): Promise<Ext2Stats>;
    close(): Promise<void>;
  }
  export interface Ext2Promises {
    readdir(path: string, options: { encoding: 'buffer' }): Promise<Buffer[]>;
    lstat(path: string): Promise<Ext2Stats>;
    stat(path: string): Promise<Ext2Stats>;
    readlink(path: string, options: { encoding: 'buffer' }): Promise<Buffer>;
    open(path: string, flags: string | number, mode?: number): Promise<Ext2FileHandle>;
  }
  export interface Ext2Fs {
    promises: Ext2Promises;
  }
  /** Errors carry the errno's name in `code` ('ENOENT', 'EIO', … or 'UNKNOWN'). */
  export function mount(disk: Disk, offset?: number): Promise<Ext2Fs>;
  export function umount(fs: Ext2Fs): Promise<void>;
}
