'use strict';
// One process of many.test.js's concurrency test: `connections`
// connections, each sending `rounds` getOrCreateMany batches of `batch`
// keys from key0..key<keys-1> at once, in orders drawn from `seed`.
// Prints one JSON line: [{ k, id, created }, ...], one per key asked.
//
//   node many_worker.js URL CONNECTIONS ROUNDS BATCH KEYS SEED
const { nodup, connectMany, batchOf } = require('./helpers');

// Every batch of every connection, all in flight together.
async function sendBatches(url, connections, rounds, batch, keys, seed) {
  const names = Array.from({ length: keys }, (_, i) => `key${i}`);
  const conns = await connectMany(url, connections);
  const calls = [];
  conns.forEach((db, c) => {
    for (let r = 0; r < rounds; r++) {
      const ks = batchOf(names, batch, seed + c * 1000 + r);
      calls.push(db.getOrCreateMany('t', ks.map((k) => ({ k })), { defaults: { v: `s${seed}` } })
        .then((res) => res.map((x, i) => ({ k: ks[i], ...x }))));
    }
  });
  const results = (await Promise.all(calls)).flat();
  await Promise.all(conns.map((db) => db.close()));
  return results;
}

if (require.main === module) {
  const [url, ...numbers] = process.argv.slice(2);
  sendBatches(url, ...numbers.map(Number))
    .then((results) => process.stdout.write(JSON.stringify(results) + '\n'))
    .catch((e) => { console.error(e); process.exit(1); });
}

module.exports = { sendBatches, nodup };
