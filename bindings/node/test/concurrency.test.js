'use strict';
// Many promises over several connections on the same keys: exactly one
// caller per key gets created, and every caller the same id.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { nodup, idColumn, setupDatabase, connectMany } = require('./helpers');

const CONNECTIONS = 8;
const KEYS = 25;
const ROUNDS = 3;  // each connection asks for every key this many times

let fresh;

before(async () => {
  fresh = await setupDatabase('conc', [`CREATE TABLE "t" (${idColumn}, "k" text UNIQUE, "v" text)`]);
});

after(async () => { await fresh.drop(); });

test('exactly one created per key across connections', async () => {
  const conns = await connectMany(fresh.url, CONNECTIONS);
  const calls = [];
  conns.forEach((db, c) => {
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < KEYS; i++) {
        const k = `key${(i * (c + 1) + r) % KEYS}`;  // a different order per connection
        calls.push(db.getOrCreate('t', { k }, { defaults: { v: `c${c}` } })
          .then((res) => ({ k, ...res })));
      }
    }
  });
  const results = await Promise.all(calls);
  await Promise.all(conns.map((db) => db.close()));
  assert.equal(results.length, CONNECTIONS * ROUNDS * KEYS);
  const byKey = new Map();
  for (const r of results) {
    const seen = byKey.get(r.k) || { created: 0, ids: new Set() };
    seen.created += r.created ? 1 : 0;
    seen.ids.add(r.id);
    byKey.set(r.k, seen);
  }
  assert.equal(byKey.size, KEYS);
  for (const [k, seen] of byKey) {
    assert.equal(seen.created, 1, `${k}: ${seen.created} callers got created`);
    assert.equal(seen.ids.size, 1, `${k}: ids ${[...seen.ids]}`);
  }
});
