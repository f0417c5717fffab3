/*
 * Preloaded into Azurite (NODE_OPTIONS=--require …) by `npm run bench -- --profile`: node refuses
 * --cpu-prof in NODE_OPTIONS, so the V8 profiler is started through the inspector and the profile is
 * written to BENCH_PROF_FILE when the process is told to stop.
 */
'use strict';
const inspector = require('node:inspector');
const fs = require('node:fs');

const file = process.env.BENCH_PROF_FILE;
if (file) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  let written = false;
  const stop = () => {
    if (written) return;
    written = true;
    session.post('Profiler.stop', (err, result) => {
      if (!err && result) fs.writeFileSync(file, JSON.stringify(result.profile));
    });
  };
  process.on('exit', stop);
  process.prependListener('SIGTERM', () => {
    stop();
    process.exit(0);
  });
}
