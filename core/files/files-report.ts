/** How file-level restore reports a backup's volumes and journal replays — one shape for the CLI's --json and the HTTP API. */
import type { BackupFiles, VolumeView } from './backup-files';

export interface VolumeSummary {
  name: string;
  offset: number;
  size: number;
  /** The partition's type ('Linux filesystem', 'EFI System', …); absent for a bare file system. */
  type?: string;
  typeId?: string;
  label?: string;
  kind: string;
  openable: boolean;
  description: string;
  why?: string;
}

/** A volume: where it lies, what it holds, whether Pagewise can open it — and why not. */
export function volumeSummary(v: VolumeView): VolumeSummary {
  return {
    name: v.name,
    offset: v.offset,
    size: v.size,
    ...(v.partition ? { type: v.partition.typeName, typeId: v.partition.typeId, ...(v.partition.label ? { label: v.partition.label } : {}) } : {}),
    kind: v.identity.kind,
    openable: v.identity.openable,
    description: v.identity.description,
    ...(v.identity.why ? { why: v.identity.why } : {}),
  };
}

/** The volumes opened so far whose journal was replayed (their files are as the VM last wrote them). */
export function replayedVolumes(files: BackupFiles): string[] {
  return files
    .volumes()
    .filter((v) => v.journal?.replayed)
    .map((v) => v.name);
}

/** One sentence per opened volume whose journal was replayed or could not be. */
export function journalNotes(files: BackupFiles): string[] {
  return files.volumes().flatMap((v) => {
    const j = v.journal;
    if (!j?.needed) return [];
    if (!j.replayed) return [`${v.name}: the journal was not replayed (${j.warning ?? 'unreadable'}): recent changes may be missing`];
    const tx = `${j.transactions} journal transaction${j.transactions === 1 ? '' : 's'}`;
    const note = `${v.name}: replayed ${tx} (${j.blocks} block${j.blocks === 1 ? '' : 's'}): files are as the VM last wrote them`;
    return j.warning ? [note, `${v.name}: ${j.warning}`] : [note];
  });
}
