/**
 * A fleet at a small scale (#17): 200 policy disks of 1 MiB on Azurite, budget 8, the timer fired once
 * through the local runtime with its queue poller. Every backup completes once, never more than 8 run at
 * once (from the orchestrations' histories), and the start queue and its poison queue end empty. Figures
 * are printed (no timing assert); bench/fleet-starts.ts records them (docs/SCALE.md).
 */
import { maxOverlap, runFleet } from './harness/fleet';

test('the overlap count of spans is exact at shared instants', () => {
  expect(maxOverlap([{ start: 0, end: 10 }, { start: 10, end: 20 }, { start: 5, end: 15 }])).toBe(2);
  expect(maxOverlap([{ start: 0, end: 10 }, { start: 1, end: 9 }, { start: 2, end: 8 }])).toBe(3);
  expect(maxOverlap([])).toBe(0);
});

test('200 disks, budget 8: all complete, none twice, never more than 8 running, queues drained', async () => {
  const fleet = await runFleet({ disks: 200, budget: 8 });
  console.log(
    `fleet: ${fleet.instances} backups in ${fleet.seconds.toFixed(1)} s, start rate ${fleet.startRate.toFixed(2)}/s, high-water ${fleet.highWater}, ` +
      `${fleet.deferrals} deferrals, first start to last end ${fleet.firstStartToLastEndSeconds.toFixed(1)} s`,
  );
  expect(fleet.failures).toEqual([]);
  expect(fleet.run).toMatchObject({ due: 200, started: [], skipped: [], failed: [] });
  expect(new Set(fleet.run.queued).size).toBe(200);
  expect(fleet.instances).toBe(200);
  expect(fleet.completed).toBe(200);
  expect(fleet.executionStarts).toBe(200);
  expect(fleet.manifests).toBe(200);
  expect(fleet.highWater).toBeGreaterThanOrEqual(1);
  expect(fleet.highWater).toBeLessThanOrEqual(8);
  expect(fleet.queueLeft).toBe(0);
  expect(fleet.poisonLeft).toBe(0);
}, 20 * 60_000);
