/** The base's page records of a window of pages, read from its tables (§19) for a batch to compare against. */
import { PageRecord2 } from '../../repo/v2/records';
import { BackupContextV2, BaseOfPlan, baseTableOf } from './context';

/** The base's records of the pages in [first, first + count), by page. */
export async function baseRecordsOf(ctx: BackupContextV2, base: BaseOfPlan, first: number, count: number): Promise<Map<number, PageRecord2>> {
  const out = new Map<number, PageRecord2>();
  const { pagesPerTable } = ctx.plan; // the base's too: the plan reuses only a base of its own page grid
  const firstGroup = Math.floor(first / pagesPerTable);
  const lastGroup = Math.floor((first + count - 1) / pagesPerTable);
  for (const ref of base.tables) {
    if (ref.index < firstGroup || ref.index > lastGroup) continue;
    for (const r of await baseTableOf(ctx, ref, pagesPerTable)) {
      if (r.page >= first && r.page < first + count) out.set(r.page, r);
    }
  }
  return out;
}
