'use strict';
// The event loop while calls wait: a getOrCreate held up by another
// transaction leaves timers running (on PostgreSQL the main thread waits
// on the socket with a watcher, on SQLite a pool thread waits for the
// lock), settles with the winner's row when it commits, keeps the order
// of calls that mix the watcher and the pool, and, at SERIALIZABLE,
// sleeps out a retried round's backoff on a timer (PostgreSQL).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
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

// Resolves once a statement of the test database waits on a lock (the
// caller's, on the holder's row): only then can the holder's commit race
// with it rather than precede it. Asked on a connection of its own, by a
// DO block that raises while none waits (exec returns no rows).
const NONE_WAITING = `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_stat_activity
  WHERE datname = current_database() AND wait_event_type = 'Lock')
  THEN RAISE EXCEPTION 'none waiting'; END IF; END $$`;

async function blocked(url) {
  const watch = await nodup.connect(url);
  try {
    for (let i = 0; i < 2000; i++) {
      if (await watch.exec(NONE_WAITING).then(() => true, () => false)) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error('no statement waited on a lock within 10 s');
  } finally {
    await watch.close();
  }
}

// On two new connections: `holder` inserts key k in a transaction it
// keeps open; `caller`, whose key is prepared already, asks for k. Its
// promise stays pending while timers fire, and once the holder commits
// it settles with the holder's row, created = false.
async function heldCall(k) {
  const [holder, caller] = [await nodup.connect(fresh.url), await nodup.connect(fresh.url)];
  try {
    await caller.getOrCreate('t', { k: `warm-${k}` });   // the key prepared: the fast path
    await holder.exec('BEGIN');
    const won = await holder.getOrCreate('t', { k });
    assert.equal(won.created, true);
    let settled = false;
    const pending = caller.getOrCreate('t', { k }).finally(() => { settled = true; });
    const ticks = await ticksFor(200);
    assert.equal(settled, false, 'the call waits for the holder');
    assert.ok(ticks >= 10, `timers fired ${ticks} times in 200 ms while the call waited`);
    if (backend === 'pg') await blocked(fresh.url);
    await holder.exec('COMMIT');
    assert.deepEqual(await pending, { id: won.id, created: false });
  } finally {
    await holder.close();
    await caller.close();
  }
}

const LIMIT = { timeout: 30000 };

test('a call held up by another transaction leaves the event loop free', LIMIT,
  () => heldCall('held'));

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
    try {
      await heldCall('serial');   // new sessions take the database's default
    } finally {
      const a = await nodup.connect(fresh.url);
      await a.exec(`ALTER DATABASE "${dbname}" RESET default_transaction_isolation`);
      await a.close();
    }
  });
}

// PostgreSQL only: the calls below run on the event loop there, and only
// there (on SQLite they are the pool's, by design).
if (backend === 'pg') {
  test('a prepared getOrCreate settles while the thread pool is saturated (on the loop)', LIMIT,
    async () => {
      const db = await nodup.connect(fresh.url);
      const size = Number(process.env.UV_THREADPOOL_SIZE || 4);
      const sleepers = await Promise.all(Array.from({ length: size }, () => nodup.connect(fresh.url)));
      try {
        await db.getOrCreate('t', { k: 'sat-warm' });   // prepared: on the loop from now on
        let slept = false;
        const sleeping = Promise.all(sleepers.map((c) => c.exec('SELECT pg_sleep(1.5)')))
          .then(() => { slept = true; });
        await new Promise((resolve) => setTimeout(resolve, 100));   // every pool thread asleep
        const got = await db.getOrCreate('t', { k: 'sat' });
        assert.equal(slept, false, 'the call waited for a pool thread');
        assert.equal(got.created, true);
        await sleeping;
      } finally {
        await db.close();
        await Promise.all(sleepers.map((c) => c.close()));
      }
    });

  test('a connection that breaks under a call leaves other sockets on the loop working', LIMIT,
    async () => {
      const a = await nodup.connect(fresh.url);
      const admin = await nodup.connect(fresh.url);
      await a.getOrCreate('t', { k: 'break-warm' });
      await a.getOrCreate('t', { k: 'break-1' });   // on the loop: a watcher on its socket
      await admin.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await assert.rejects(a.getOrCreate('t', { k: 'break-2' }));
      // A socket pair made now may take the number libpq's socket had.
      const dir = path.join(require('node:os').tmpdir(), `nodup-nb-${process.pid}.sock`);
      const server = net.createServer((s) => { setTimeout(() => s.end('hello'), 100); });
      await new Promise((resolve) => server.listen(dir, resolve));
      const client = net.connect(dir);
      const got = new Promise((resolve) => {
        let text = '';
        client.on('data', (d) => { text += d; });
        client.on('end', () => resolve(text));
      });
      await a.close();   // closes its watcher
      const text = await Promise.race([got,
        new Promise((resolve) => setTimeout(() => resolve('(nothing in 3 s)'), 3000))]);
      server.close();
      await admin.close();
      assert.equal(text, 'hello');
    });

  test('terminating a Worker whose call waits on the loop leaves the process running', LIMIT,
    () => {
      const r = spawnSync(process.execPath, [path.join(__dirname, 'teardown_worker.js'), fresh.url],
        { encoding: 'utf8', timeout: 25000 });
      assert.equal(r.status, 0, `exit ${r.status} ${r.signal || ''}: ${r.stderr}`);
      assert.match(r.stdout, /main done/);
    });
}
