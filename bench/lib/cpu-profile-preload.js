// Preloaded into Azurite by bench/restore-cpu.ts (NODE_OPTIONS=--require; Node 20 refuses --cpu-prof there):
// SIGUSR2 starts the V8 CPU profiler, a second SIGUSR2 writes it to $PAGEWISE_PROFILE_DIR/azurite-<pid>.cpuprofile.
const { Session } = require('node:inspector');
const { writeFileSync } = require('node:fs');
const path = require('node:path');

const session = new Session();
session.connect();
let profiling = false;
process.on('SIGUSR2', () => {
  if (!profiling) {
    profiling = true;
    session.post('Profiler.enable', () => session.post('Profiler.start'));
    return;
  }
  session.post('Profiler.stop', (err, result) => {
    if (!err) writeFileSync(path.join(process.env.PAGEWISE_PROFILE_DIR, `azurite-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
  });
});
