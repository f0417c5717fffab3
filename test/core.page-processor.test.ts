/** Dedupe within a batch (core/processor/page-processor.ts): refer only to recorded blocks. */
import { BatchDedupe, DedupeIndex } from '../core/processor/page-processor';

test("a batch refers only to its own blocks and to those of batches whose record is written", () => {
  const recorded = new DedupeIndex();
  const first = new BatchDedupe(recorded);
  const second = new BatchDedupe(recorded);
  first.remember(0, 'h1', 10);
  expect(first.lookup(0, 'h1')).toBe(10);
  // Batch one is still running (it could be redone on resume): batch two must not refer to its block.
  expect(second.lookup(0, 'h1')).toBeUndefined();
  first.publish();
  expect(second.lookup(0, 'h1')).toBe(10);
  expect(second.lookup(1, 'h1')).toBeUndefined(); // dedupe stays within a segment
  second.remember(0, 'h1', 20); // the first staged block stays the one referred to
  second.publish();
  expect(recorded.lookup(0, 'h1')).toBe(10);
});
