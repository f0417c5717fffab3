/**
 * `npm run bench:emulator-drift -- --rounds=3`: how Azurite's CPU per staged MiB changes as it stores more (#15).
 * Starts a fresh emulator, then stages 256 MiB of random 4 MiB blocks (committed) again and again, with 1, 2, 4
 * and 8 Stage Blocks in flight in turn, and prints the emulator's CPU (from /proc) and the wall time of each.
 * Why it matters: the bench's copy trials run before every Pagewise backup, so a copy that meets a fresher
 * emulator is compared with a backup that meets a fuller one (see PW÷copy paired in bench/README.md).
 * Linux only (/proc).
 */
import { randomBytes } from 'node:crypto';
import { MiB } from '../core';
import { startAzurite } from '../testkit/azurite';
import { findAzuritePid, processCpuSeconds } from './lib/child';
import { machine, revision } from './lib/run-facts';

const argv = process.argv.slice(2);
const ROUNDS = Number(argv.find((a) => a.startsWith('--rounds='))?.split('=')[1] ?? 3);
const BLOCK = 4 * MiB;
const BLOCKS = 64; // 256 MiB per staging

async function main(): Promise<void> {
  const az = await startAzurite({ accounts: ['vault'] });
  try {
    const pid = findAzuritePid();
    const container = az.accounts.vault.service.getContainerClient('drift');
    await container.create();
    const pool = randomBytes(64 * MiB);
    process.stdout.write(`${revision()}; ${machine()}; ${ROUNDS} rounds of 4 stagings of 256 MiB (1, 2, 4, 8 in flight)\n`);
    let stored = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      for (const inFlight of [1, 2, 4, 8]) {
        const blob = container.getBlockBlobClient(`r${round}-c${inFlight}`);
        const ids = Array.from({ length: BLOCKS }, (_, i) => Buffer.from(String(i).padStart(8, '0')).toString('base64'));
        const cpu0 = processCpuSeconds(pid) ?? NaN;
        const started = Date.now();
        let next = 0;
        await Promise.all(
          Array.from({ length: inFlight }, async () => {
            while (next < BLOCKS) {
              const i = next++;
              const at = (i * 7919 * 4096) % (pool.length - BLOCK);
              await blob.stageBlock(ids[i], pool.subarray(at, at + BLOCK), BLOCK);
            }
          }),
        );
        await blob.commitBlockList(ids);
        const cpu = (processCpuSeconds(pid) ?? NaN) - cpu0;
        process.stdout.write(`round ${round}, ${inFlight} in flight, ${(stored / MiB / 1024).toFixed(2)} GiB stored before: Azurite CPU ${cpu.toFixed(2)} s, wall ${((Date.now() - started) / 1000).toFixed(2)} s\n`);
        stored += BLOCKS * BLOCK;
      }
    }
  } finally {
    await az.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
