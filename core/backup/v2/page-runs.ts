/** A set of pages held as ascending, coalesced runs `[firstPage, pageCount]` (a plan's `changedPages`). */
import { PagewiseError } from '../../errors';

export class PageRuns {
  private constructor(readonly runs: readonly [number, number][]) {}

  /** Runs from a plan, checked ascending, disjoint and inside the disk (a hostile plan is Corrupt). */
  static of(runs: unknown, pageCount: number, where: string): PageRuns {
    if (!Array.isArray(runs)) throw new PagewiseError('Corrupt', `${where}: changedPages is not a list`);
    let end = 0;
    for (const r of runs) {
      const ok = Array.isArray(r) && r.length === 2 && Number.isSafeInteger(r[0]) && Number.isSafeInteger(r[1]) && r[0] >= end && r[1] > 0 && r[0] + r[1] <= pageCount;
      if (!ok) throw new PagewiseError('Corrupt', `${where}: changedPages holds ${JSON.stringify(r).slice(0, 40)}, not an ascending run of pages inside the disk`);
      end = r[0] + r[1];
    }
    return new PageRuns(runs as [number, number][]);
  }

  /** Appends runs given ascending, merging touching ones. */
  static coalesce(runs: Iterable<[number, number]>): [number, number][] {
    const out: [number, number][] = [];
    for (const [first, count] of runs) {
      const last = out[out.length - 1];
      if (last && first <= last[0] + last[1]) last[1] = Math.max(last[1], first + count - last[0]);
      else out.push([first, count]);
    }
    return out;
  }

  has(page: number): boolean {
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [first, count] = this.runs[mid];
      if (page < first) hi = mid - 1;
      else if (page >= first + count) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** Whether any page of [first, first + count) is in the set. */
  touches(first: number, count: number): boolean {
    let lo = 0;
    let hi = this.runs.length;
    while (lo < hi) {
      // first run ending after `first`
      const mid = (lo + hi) >> 1;
      if (this.runs[mid][0] + this.runs[mid][1] <= first) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.runs.length && this.runs[lo][0] < first + count;
  }

  /** Ascending numbers of the batches (`pagesPerBatch` pages each) holding a page of the set. */
  batches(pagesPerBatch: number): number[] {
    const out: number[] = [];
    for (const [first, count] of this.runs) {
      for (let b = Math.floor(first / pagesPerBatch); b <= Math.floor((first + count - 1) / pagesPerBatch); b++) {
        if (out[out.length - 1] !== b) out.push(b);
      }
    }
    return out;
  }
}
