// Preloaded into Strait by `npm run profile -- <workload> --alloc` (node --import): V8's sampling
// heap profiler, told to keep objects the scavenger and mark-compact already freed, so the profile
// shows where garbage is made, not only what survives. Sampling starts on SIGUSR2 (sent once the
// peer is up, so start-up allocation stays out) and the profile is written when the process exits.
import fs from 'node:fs';
import inspector from 'node:inspector';

const out = process.env.STRAIT_ALLOC_PROFILE;
if (out) {
  const session = new inspector.Session();
  session.connect();
  let started = false;
  process.on('SIGUSR2', () => {
    if (started) return;
    started = true;
    session.post('HeapProfiler.startSampling', {
      samplingInterval: Number(process.env.STRAIT_ALLOC_INTERVAL ?? 512),
      includeObjectsCollectedByMinorGC: true,
      includeObjectsCollectedByMajorGC: true,
    });
  });
  // A same-thread inspector session answers synchronously, so this runs within 'exit'.
  process.on('exit', () => {
    if (!started) return;
    session.post('HeapProfiler.stopSampling', (err, res) => {
      if (!err) fs.writeFileSync(out, JSON.stringify(res.profile));
    });
  });
}
