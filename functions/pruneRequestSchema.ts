/** JSON-schema properties of a prune request (HTTP body, activity input): one definition for both surfaces. */
export const pruneRequestProperties = {
  dryRun: { type: 'boolean', nullable: true },
  // The fraction of the vault's pack bytes that may stay unused before packs are repacked (restic's --max-unused).
  maxUnused: { type: 'number', minimum: 0, maximum: 1, nullable: true },
  repack: { type: 'boolean', nullable: true },
} as const;
