/**
 * `pagewise upload <image-file> <page-blob-url> [--force] [--json]`: puts a local disk image into a
 * cloud account as a sparse page blob (zero regions stay unallocated), to try Pagewise on one's own
 * images — real file systems, odd sizes (padded with zeros to a multiple of 512).
 */
import { formatBytes, uploadImage } from '../../core';
import { storageLocation } from '../locations';
import { printJson, printLines, seconds } from '../output';
import { DefineCommand } from './context';

export const defineUpload: DefineCommand = (program, ctx) => {
  program
    .command('upload')
    .description('upload a local disk image as a sparse page blob (a disk to back up)')
    .argument('<image-file>', 'raw disk image (e.g. made with dd, qemu-img convert -O raw, mkfs on a file)')
    .argument('<page-blob-url>', 'where the page blob goes (SAS, or PAGEWISE_SOURCE_CONNECTION_STRING)')
    .option('--force', 'replace an existing blob')
    .option('--json', 'print the result as one JSON object')
    .action(async (file: string, url: string, opts: { force?: boolean; json?: boolean }) => {
      const { io } = ctx;
      const target = storageLocation(url, 'source', io.env);
      // Ctrl-C/SIGTERM stop it cleanly: the partly written blob is removed, not left to be backed up.
      const result = await uploadImage(file, target, { overwrite: opts.force ?? false, abortSignal: io.interruptSignal?.() });
      if (opts.json) {
        printJson(io, result);
        return;
      }
      printLines(io, [
        `uploaded ${file} to ${result.target}: ${formatBytes(result.diskBytes)} disk, ${formatBytes(result.writtenBytes)} written (zero regions left unallocated) in ${seconds(result.durationMs)}`,
        ...(result.paddedBytes > 0 ? [`the image was padded with ${result.paddedBytes} zero bytes to a multiple of 512`] : []),
      ]);
    });
};
