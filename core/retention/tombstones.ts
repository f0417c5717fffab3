// Soft-delete tombstones (docs/FORMAT.md §26.2). Here only what the writer's base choice needs; branch retention owns the rest of this module.
import type { Vault } from '../repo/vault';

/** `forgotten/<nameTag>.pwe`: the nameTag of a forgotten backup. */
const TOMBSTONE_NAME_RE = /^forgotten\/([0-9a-f]{32})\.pwe$/;

/**
 * The nameTags that have a tombstone: one listing of `forgotten/`, names only (no key, nothing read).
 * A tombstone that cannot be read still counts: a backup someone forgot is never a base (§21.2).
 */
export async function tombstonedNameTags(vault: Vault): Promise<Set<string>> {
  const tags = new Set<string>();
  for await (const name of vault.list('forgotten/')) {
    const m = TOMBSTONE_NAME_RE.exec(name);
    if (m) tags.add(m[1]);
  }
  return tags;
}
