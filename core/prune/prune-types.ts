/** What pruneVault takes and reports (SPEC13's interface), apart from the code so sweep and prune share it without a cycle. */
import type { Clock } from '../clock';
import type { StorageLocation } from '../types';
import type { CompactReport } from '../repo/v2/index-compaction';
import type { GcParams } from './protocol';

export type PruneStep = 'manifests' | 'tables' | 'packs' | 'deltas' | 'generations' | 'staging' | 'repack' | 'mark' | 'marks' | 'index';

export interface PruneOptions {
  vault: StorageLocation;
  userKey: Buffer;
  dryRun?: boolean;
  params?: Partial<GcParams>;
  clock?: Clock;
  /** default true */
  repack?: boolean;
  /**
   * The least soft-delete grace this prune grants, counted from each tombstone's Creation-Time (the
   * service's clock): a tombstone written with a shorter grace (or a backdated one) waits this long anyway.
   * Default 0; the prune app's setting PAGEWISE_PRUNE_MIN_GRACE_DAYS (default 7).
   */
  minGraceMs?: number;
  abortSignal?: AbortSignal;
  onProgress?: (step: PruneStep, done: number, total: number) => void;
  /** local directory for compaction's spill files (default: the OS temp directory) */
  scratchDir?: string;
  /** test hook: called before every single deletion/write with its step; throwing simulates a kill there */
  beforeMutation?: (step: PruneStep, blobName: string) => void | Promise<void>;
}

export interface PruneReport {
  pruneId: string;
  dryRun: boolean;
  startedAt: string;
  completedAt: string;
  /** why no table, pack or delta was swept or marked this run */
  blocked?: string;
  kept: { manifests: number; packs: number; tables: number };
  /** generations: index generations whose every blob this run deleted (#15) */
  deleted: { manifests: string[]; tables: number; packs: number; deltas: number; stagingBlobs: number; marks: number; generations: number };
  /** candidates waiting for their second mark */
  pending: { packs: number; tables: number; staging: number; bytes: number; eligibleAt?: string };
  repacked: { packs: number; newPacks: number; bytesCopied: number };
  /** stored bytes of every blob this run deleted */
  bytesReclaimed: number;
  /** after the run: pack bytes not live (unreferenced packs, dead blocks, repacked sources, trailers) */
  bytesUnused: number;
  /** after the run: every pack's bytes */
  bytesTotal: number;
  locked: { name: string; lock: 'policy' | 'legal-hold' }[];
  /** dry run: what a real run would delete now */
  wouldDelete?: { manifests: string[]; tables: string[]; packs: string[]; staging: string[]; deltas: string[]; generations: string[] };
  /** the index generation this run compacted (#15): null when it did not (dry, blocked, nothing uncovered) */
  index: CompactReport | null;
  /** the name of the mark this run wrote (not in a dry run) */
  mark?: string;
  /** what could not be read (a kept backup's damage blocks the run; the rest is told here) */
  problems: string[];
}
