'use strict';
// nonblock.test.js's teardown case, in a process of its own (an abort
// would take the test runner with it): a Worker whose getOrCreate waits
// on the event loop (its key prepared, the row held by this thread's
// open transaction) is terminated. Prints "main done" and exits 0 when
// the process survives it.
//
//   node teardown_worker.js URL
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const { nodup } = require('./helpers');

if (isMainThread) {
  const url = process.argv[2];
  (async () => {
    const holder = await nodup.connect(url);
    await holder.exec('BEGIN');
    await holder.getOrCreate('t', { k: 'teardown-held' });
    const w = new Worker(__filename, { workerData: url });
    await new Promise((resolve) => w.on('message', resolve));
    await new Promise((resolve) => setTimeout(resolve, 200));   // the call waits in the server
    await w.terminate();
    await holder.exec('COMMIT');
    await holder.close();
    console.log('main done');
  })().catch((e) => { console.error(e); process.exit(1); });
} else {
  (async () => {
    const db = await nodup.connect(workerData);
    await db.getOrCreate('t', { k: 'teardown-warm' });   // the key prepared: on the loop next
    db.getOrCreate('t', { k: 'teardown-held' });
    parentPort.postMessage('waiting');
  })();
}
