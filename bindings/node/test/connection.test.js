'use strict';
// Connections: opening errors, one call at a time in order, close() with
// calls pending, use after close, and a Connection garbage-collected with
// calls in flight.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { nodup, idColumn, setupDatabase, packageDir } = require('./helpers');

let fresh;

before(async () => {
  fresh = await setupDatabase('conn', [`CREATE TABLE "t" (${idColumn}, "k" text UNIQUE, "v" text)`]);
});

after(async () => { await fresh.drop(); });

test('connect() resolves with a Connection', async () => {
  const db = await nodup.connect(fresh.url);
  assert.ok(db instanceof nodup.Connection);
  await db.close();
});

test('a server that is down rejects with NODUP_ERR_CONNECT', async () => {
  await assert.rejects(nodup.connect('host=/nonexistent/nodup-node dbname=x connect_timeout=2'),
    (e) => {
      assert.equal(e.code, 'NODUP_ERR_CONNECT');
      assert.equal(e.errno, nodup.codes.NODUP_ERR_CONNECT);
      assert.match(e.message, /\/nonexistent\/nodup-node/);
      return true;
    });
  await assert.rejects(nodup.connect('/nonexistent/nodup-node.db'), { code: 'NODUP_ERR_CONNECT' });
});

test('a malformed URL rejects with NODUP_ERR_URL, password hidden', async () => {
  for (const url of ['', 'mysql://h/db', 'host=/tmp bogus=1', 'sqlite:']) {
    await assert.rejects(nodup.connect(url), { code: 'NODUP_ERR_URL' }, url);
  }
  await assert.rejects(nodup.connect('postgres://user:s3cret@[::1/db'), (e) => {
    assert.equal(e.code, 'NODUP_ERR_URL');
    assert.doesNotMatch(e.message, /s3cret/);
    return true;
  });
});

test('calls on one connection run in the order they were made', async () => {
  const db = await nodup.connect(fresh.url);
  // Not awaited one by one: the queue must still keep the order, so the
  // first call creates and every later one finds.
  const results = await Promise.all(
    Array.from({ length: 50 }, () => db.getOrCreate('t', { k: 'order' })));
  assert.equal(results[0].created, true);
  assert.ok(results.slice(1).every((r) => !r.created && r.id === results[0].id));
  await db.close();
});

test('close() lets pending calls finish, then refuses new ones', async () => {
  const db = await nodup.connect(fresh.url);
  const pending = Array.from({ length: 20 }, (_, i) => db.getOrCreate('t', { k: `p${i}` }));
  const closed = db.close();
  // Refused at once: the check is attached now, before anything awaits.
  const late = assert.rejects(db.getOrCreate('t', { k: 'late' }),
    { code: 'NODUP_ERR_USAGE', message: /closed/ });
  const results = await Promise.all(pending);
  assert.ok(results.every((r) => r.created));
  await closed;
  await late;
  await assert.rejects(db.getOrCreate('t', { k: 'later' }), { code: 'NODUP_ERR_USAGE' });
  await db.close();  // twice: harmless
  // What a closed connection refused was never written.
  const check = await nodup.connect(fresh.url);
  assert.equal((await check.getOrCreate('t', { k: 'late' })).created, true);
  await check.close();
});

test('a Connection dropped with calls in flight is not collected under them', () => {
  // A child with --expose-gc: drop the only reference while 200 calls are
  // queued, collect garbage, then check every call settled.
  const script = `
    const nodup = require(${JSON.stringify(packageDir)});
    (async () => {
      let db = await nodup.connect(${JSON.stringify(fresh.url)});
      const calls = Array.from({ length: 200 }, (_, i) => db.getOrCreate('t', { k: 'gc' + (i % 7) }));
      db = null;
      for (let i = 0; i < 5; i++) { global.gc(); await new Promise((r) => setImmediate(r)); }
      const results = await Promise.all(calls);
      // Now idle and unreachable: the finalizer closes it.
      for (let i = 0; i < 5; i++) { global.gc(); await new Promise((r) => setImmediate(r)); }
      console.log(results.filter((r) => r.created).length);
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const out = execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
  assert.equal(out.trim(), '7');
});

test('the addon loads and works in worker threads too (state per environment)', async () => {
  const { Worker } = require('node:worker_threads');
  const script = `
    const { parentPort, workerData } = require('node:worker_threads');
    const nodup = require(workerData.packageDir);
    (async () => {
      const db = await nodup.connect(workerData.url);
      const r = await db.getOrCreate('t', { k: 'worker' });
      await db.close();
      parentPort.postMessage(r);
    })().catch((e) => parentPort.postMessage({ error: String(e) }));`;
  const run = () => new Promise((resolve, reject) => {
    const w = new Worker(script, { eval: true, workerData: { packageDir, url: fresh.url } });
    w.once('message', resolve);
    w.once('error', reject);
  });
  const results = [await run(), await run()];
  assert.deepEqual(results.map((r) => r.created), [true, false]);
  assert.equal(results[0].id, results[1].id);
});
