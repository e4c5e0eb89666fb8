'use strict';
// The event loop while calls wait: a getOrCreate held up by another
// transaction leaves timers running (on PostgreSQL the main thread waits
// on the socket with a watcher, on SQLite a pool thread waits for the
// lock), settles with the winner's row when it commits, keeps the order
// of calls that mix the watcher and the pool, and, at SERIALIZABLE,
// sleeps out a retried round's backoff on a timer (PostgreSQL).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { nodup, backend, idColumn, setupDatabase } = require('./helpers');

let fresh;

before(async () => {
  fresh = await setupDatabase('nonblock', [
    `CREATE TABLE "t" (${idColumn}, "k" text UNIQUE NOT NULL)`,
    `CREATE TABLE "o" (${idColumn}, "k" text UNIQUE NOT NULL)`,
  ]);
});

after(async () => { await fresh.drop(); });

// Resolves after `ms`, counting how many 5 ms timers fired meanwhile.
function ticksFor(ms) {
  return new Promise((resolve) => {
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 5);
    setTimeout(() => { clearInterval(timer); resolve(ticks); }, ms);
  });
}

// `holder` inserts key k in a transaction it keeps open; `caller`, whose
// key is prepared already, asks for k: its promise stays pending while
// timers fire, then settles with the holder's row once it commits.
async function heldCall(holder, caller, k, beforeCommit) {
  await caller.getOrCreate('t', { k: `warm-${k}` });   // the key prepared: the fast path
  await holder.exec('BEGIN');
  const won = await holder.getOrCreate('t', { k });
  assert.equal(won.created, true);
  let settled = false;
  const pending = caller.getOrCreate('t', { k }).finally(() => { settled = true; });
  const ticks = await ticksFor(200);
  assert.equal(settled, false, 'the call waits for the holder');
  assert.ok(ticks >= 10, `timers fired ${ticks} times in 200 ms while the call waited`);
  if (beforeCommit) await beforeCommit();
  await holder.exec('COMMIT');
  return { won, got: await pending };
}

const LIMIT = { timeout: 30000 };

test('a call held up by another transaction leaves the event loop free', LIMIT, async () => {
  const [holder, caller] = [await nodup.connect(fresh.url), await nodup.connect(fresh.url)];
  try {
    const { won, got } = await heldCall(holder, caller, 'held');
    assert.deepEqual(got, { id: won.id, created: false });
  } finally {
    await holder.close();
    await caller.close();
  }
});

test('calls that mix the fast path and the pool settle in the order they were made', async () => {
  const db = await nodup.connect(fresh.url);
  try {
    await db.getOrCreate('t', { k: 'warm' });
    const order = [];
    const calls = [];
    for (let i = 0; i < 30; i++) {
      // Even: getOrCreate on a prepared key (the fast path on PostgreSQL);
      // odd: calls that always go to the pool.
      const p = i % 2 === 0 ? db.getOrCreate('t', { k: `m${i}` })
        : i % 3 === 0 ? db.getOrCreateMany('o', [{ k: `m${i}` }]) : db.exec('SELECT 1');
      calls.push(p.then((r) => { order.push(i); return r; }));
    }
    const results = await Promise.all(calls);
    assert.deepEqual(order, [...Array(30).keys()]);
    for (let i = 0; i < 30; i += 2) assert.equal(results[i].created, true);
    assert.equal((await db.getOrCreate('t', { k: 'm0' })).id, results[0].id);
  } finally {
    await db.close();
  }
});

// PostgreSQL only: SQLite has no serialization failures.
if (backend === 'pg') {
  test('SERIALIZABLE: a retried round backs off on a timer, then returns the winner', LIMIT,
    async () => {
    const admin = await nodup.connect(fresh.url);
    const dbname = /dbname=(\S+)\s*$/.exec(fresh.url)[1];
    await admin.exec(
      `ALTER DATABASE "${dbname}" SET default_transaction_isolation = 'serializable'`);
    await admin.close();
    // New sessions take the database's default.
    const [holder, caller] = [await nodup.connect(fresh.url), await nodup.connect(fresh.url)];
    try {
      const { won, got } = await heldCall(holder, caller, 'serial');
      assert.deepEqual(got, { id: won.id, created: false });
    } finally {
      await holder.close();
      await caller.close();
      const a = await nodup.connect(fresh.url);
      await a.exec(`ALTER DATABASE "${dbname}" RESET default_transaction_isolation`);
      await a.close();
    }
  });
}
