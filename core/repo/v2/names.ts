/** Blob names of the version-2 layout (docs/FORMAT.md §13). */

const pad8 = (n: number) => String(n).padStart(8, '0');

/** Largest `<inv>` value: 13 digits, so names sort newest first until the year 2286. */
const INV_BASE = 9_999_999_999_999;

export const V2_MARKER = 'pagewise-vault-v2.json';
export const HEX32_RE = /^[0-9a-f]{32}$/;
export const HEX16_RE = /^[0-9a-f]{16}$/;
/** An index delta name: index/d/<stamp>-<writerId>.pwx */
export const DELTA_NAME_RE = /^index\/d\/\d{8}T\d{9}Z-[0-9a-f]{16}\.pwx$/;
/** A pack name: packs/<pp>/<packId>.pwp (pp = the packId's first two digits, checked by the caller). */
export const PACK_NAME_RE = /^packs\/([0-9a-f]{2})\/([0-9a-f]{32})\.pwp$/;
/** A manifest name: manifests/<diskTag>/<inv>-<nameTag>.pwm */
export const MANIFEST_NAME_RE = /^manifests\/([0-9a-f]{32})\/(\d{13})-([0-9a-f]{32})\.pwm$/;

/** `<inv>` of §13 for an ISO completion time. */
export function invertedTime(completedAt: string): string {
  const ms = Date.parse(completedAt);
  if (!Number.isFinite(ms) || ms < 0 || ms > INV_BASE) throw new RangeError(`not a completion time: ${completedAt}`);
  return String(INV_BASE - ms).padStart(13, '0');
}

/** `<stamp>` of §13: UTC YYYYMMDDTHHMMSSmmmZ. */
export function stampOf(date: Date): string {
  return date.toISOString().replace(/[-:.]/g, '');
}

/** The `<stamp>` of a delta name, strictly parsed (a real UTC instant, as `stampOf` writes it); undefined if none. */
export function deltaStampMs(name: string): number | undefined {
  const m = /^index\/d\/(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-[0-9a-f]{16}\.pwx$/.exec(name);
  if (m === null) return undefined;
  const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]);
  // Date.UTC rolls over (month 13, second 60): only a stamp that writes back the same is one.
  return Number.isFinite(ms) && stampOf(new Date(ms)) === name.slice(8, 27) ? ms : undefined;
}

export const v2names = {
  marker: V2_MARKER,
  keySlot: (keyId: string, epoch: number) => `keys/${keyId}.${epoch}.json`,
  keySlotPrefix: (keyId: string) => `keys/${keyId}.`,
  pack: (packId: string) => `packs/${packId.slice(0, 2)}/${packId}.pwp`,
  delta: (stamp: string, writerId: string) => `index/d/${stamp}-${writerId}.pwx`,
  deltaPrefix: () => 'index/d/',
  table: (tableId: string) => `tables/${tableId}.pwt`,
  stagingPrefix: (nameTag: string) => `staging/${nameTag}/`,
  plan: (nameTag: string) => `staging/${nameTag}/plan.pwe`,
  batch: (nameTag: string, batch: number) => `staging/${nameTag}/batches/${pad8(batch)}.pwe`,
  manifest: (diskTag: string, completedAt: string, nameTag: string) => `manifests/${diskTag}/${invertedTime(completedAt)}-${nameTag}.pwm`,
  manifestPrefix: (diskTag?: string) => (diskTag === undefined ? 'manifests/' : `manifests/${diskTag}/`),
  tombstone: (nameTag: string) => `forgotten/${nameTag}.pwe`,
};
