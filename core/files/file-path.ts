/** Paths inside a backed-up disk as users write them: 'p1:/etc/fstab', or '/etc/fstab' when one volume can be opened. */
import { PagewiseError } from '../errors';

export interface VolumePath {
  /** 'p1'… or 'disk' for a bare file system. */
  volume: string;
  /** Normalized absolute, '/' for the root. */
  path: string;
}

export const MAX_VOLUME_PATH_BYTES = 4096;

/** Echoes a path in a message without flooding it. */
const shown = (text: string) => JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);

/**
 * 'p1:/etc/fstab', '/etc/fstab' (only when exactly one volume can be opened, or the disk has one volume),
 * 'p1:' = that volume's root. Refuses NUL, a relative path, '.'/'..' components, more than 4096 bytes, an
 * unknown volume — BadInput saying which. `volumes` = the names the disk has.
 */
export function parseVolumePath(text: string, volumes: Array<{ name: string; openable: boolean }>): VolumePath {
  if (text.includes('\0')) throw new PagewiseError('BadInput', `the path ${shown(text)} holds a NUL character`);
  if (Buffer.byteLength(text) > MAX_VOLUME_PATH_BYTES) throw new PagewiseError('BadInput', `the path ${shown(text)} is longer than ${MAX_VOLUME_PATH_BYTES} bytes`);
  const names = volumes.map((v) => v.name);
  const prefix = /^([^/:]+):(.*)$/s.exec(text);
  let volume: string;
  let rest: string;
  if (prefix) {
    if (!names.includes(prefix[1])) {
      throw new PagewiseError('BadInput', `the path ${shown(text)} names volume "${prefix[1]}", which the disk does not have (it has ${names.join(', ') || 'none'})`);
    }
    volume = prefix[1];
    rest = prefix[2] === '' ? '/' : prefix[2];
  } else {
    const openable = volumes.filter((v) => v.openable);
    const only = volumes.length === 1 ? volumes[0] : openable.length === 1 ? openable[0] : undefined;
    if (text.startsWith('/') && only === undefined) {
      throw new PagewiseError('BadInput', `the path ${shown(text)} does not say which volume: write it as <volume>:${text.length > 40 ? '/…' : text} (the disk has ${names.join(', ') || 'no volume'})`);
    }
    volume = only?.name ?? '';
    rest = text;
  }
  if (!rest.startsWith('/')) throw new PagewiseError('BadInput', `the path ${shown(text)} is relative: write it from the volume's root, e.g. ${volume || 'p1'}:/etc/fstab`);
  const parts = rest.split('/').filter((part) => part !== '');
  if (parts.some((part) => part === '.' || part === '..')) throw new PagewiseError('BadInput', `the path ${shown(text)} holds a "." or ".." component; write it without them`);
  return { volume, path: `/${parts.join('/')}` };
}

/** The path as a user writes it back: without the volume when the disk has only one. */
export function formatVolumePath(p: VolumePath, volumeCount: number): string {
  return volumeCount <= 1 ? p.path : `${p.volume}:${p.path}`;
}
