'use strict';
// getOrCreateMany on this engine: results in input order, a repeated key
// created once, defaults (one object or one per key) on create only, the
// library's refusals naming the row, argument errors naming the index,
// and overlapping batches from several connections in several processes.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { nodup, idColumn, setupDatabase, connectMany, tallyByKey } = require('./helpers');
const { sendBatches } = require('./many_worker');

let fresh, db;

before(async () => {
  fresh = await setupDatabase('many', [
    `CREATE TABLE "t" (${idColumn}, "k" text UNIQUE, "v" text, "n" integer)`,
    `CREATE TABLE "pair" (${idColumn}, "a" text NOT NULL, "b" text NOT NULL, "v" text,
       UNIQUE ("a", "b"))`,
    `CREATE TABLE "checked" (${idColumn}, "k" text UNIQUE,
       "n" integer CONSTRAINT "checked_n_positive" CHECK ("n" > 0))`,
  ]);
  db = await nodup.connect(fresh.url);
});

after(async () => {
  await db.close();
  await fresh.drop();
});

const keys = (...ks) => ks.map((k) => ({ k }));

test('results come in input order, matching getOrCreate', async () => {
  const b = await db.getOrCreate('t', { k: 'order-b' });
  const res = await db.getOrCreateMany('t', keys('order-c', 'order-b', 'order-a'));
  assert.equal(res.length, 3);
  assert.deepEqual(res.map((r) => r.created), [true, false, true]);
  assert.equal(res[1].id, b.id);
  for (const [i, k] of ['order-c', 'order-b', 'order-a'].entries())
    assert.deepEqual(await db.getOrCreate('t', { k }), { id: res[i].id, created: false });
  const again = await db.getOrCreateMany('t', keys('order-a', 'order-new', 'order-c'));
  assert.deepEqual(again, [{ id: res[2].id, created: false }, { id: again[1].id, created: true },
    { id: res[0].id, created: false }]);
});

test('a repeated key is created once, for its first occurrence', async () => {
  const res = await db.getOrCreateMany('t', keys('rep-1', 'rep-2', 'rep-1', 'rep-1'),
    { defaults: [{ v: 'first' }, { v: 'x' }, { v: 'second' }, { v: 'third' }] });
  assert.deepEqual(res.map((r) => r.created), [true, true, false, false]);
  assert.equal(new Set([res[0].id, res[2].id, res[3].id]).size, 1);
  assert.notEqual(res[0].id, res[1].id);
  // The first occurrence's defaults.
  assert.equal((await db.updateOrCreate('t', { k: 'rep-1' }, { set: { v: 'first' } })).outcome,
    'unchanged');
});

test('defaults: one object for every row, or one per key; on create only', async () => {
  await db.getOrCreateMany('t', keys('def-1', 'def-2'), { defaults: { v: 'all', n: 3 } });
  for (const k of ['def-1', 'def-2'])
    assert.equal((await db.updateOrCreate('t', { k }, { set: { v: 'all', n: 3 } })).outcome,
      'unchanged');
  const res = await db.getOrCreateMany('t', keys('def-1', 'def-3'),
    { defaults: [{ v: 'new-1', n: 1 }, { v: 'new-3', n: 2 }] });
  assert.deepEqual(res.map((r) => r.created), [false, true]);
  // def-1 existed: its defaults were not written.
  assert.equal((await db.updateOrCreate('t', { k: 'def-1' }, { set: { v: 'all', n: 3 } })).outcome,
    'unchanged');
  assert.equal((await db.updateOrCreate('t', { k: 'def-3' }, { set: { v: 'new-3', n: 2 } }))
    .outcome, 'unchanged');
});

test('a composite key, and options.where on a partial index', async () => {
  const res = await db.getOrCreateMany('pair', [{ a: '1', b: '2' }, { a: '2', b: '1' },
    { a: '1', b: '2' }], { defaults: { v: 'p' } });
  assert.deepEqual(res.map((r) => r.created), [true, true, false]);
  assert.equal(res[0].id, res[2].id);
  assert.equal((await db.getOrCreate('pair', { a: '2', b: '1' })).id, res[1].id);
  await assert.rejects(db.getOrCreateMany('pair', [{ a: '1', b: '2' }], { where: `"v" = 'p'` }),
    { code: 'NODUP_ERR_UNBACKED' });
});

test('a null key value rejects with NODUP_ERR_NULL_KEY naming the row; nothing written',
  async () => {
    await assert.rejects(db.getOrCreateMany('t', [{ k: 'null-1' }, { k: 'null-2' }, { k: null }]),
      (e) => {
        assert.ok(e instanceof Error);
        assert.equal(e.code, 'NODUP_ERR_NULL_KEY');
        assert.equal(e.errno, nodup.codes.NODUP_ERR_NULL_KEY);
        assert.match(e.message, /\brow 3: /);
        assert.match(e.message, /"k"/);
        return true;
      });
    assert.equal((await db.getOrCreate('t', { k: 'null-1' })).created, true);
  });

test('another constraint rejects for the whole call; nothing written', async () => {
  await assert.rejects(db.getOrCreateMany('checked', keys('c1', 'c2'),
    { defaults: [{ n: 1 }, { n: -1 }] }), (e) => {
    assert.equal(e.code, 'NODUP_ERR_CONSTRAINT');
    assert.equal(e.sqlstate, '23514');
    assert.match(e.message, /checked_n_positive/);
    return true;
  });
  assert.equal((await db.getOrCreate('checked', { k: 'c1' }, { defaults: { n: 1 } })).created,
    true);
});

test('an empty array resolves with []', async () => {
  assert.deepEqual(await db.getOrCreateMany('t', []), []);
  assert.deepEqual(await db.getOrCreateMany('nosuch', [], { defaults: [] }), []);
});

test('mismatched columns reject with a TypeError naming the index', async () => {
  const refused = async (promise, pattern) => assert.rejects(promise, (e) => {
    assert.ok(e instanceof TypeError, String(e));
    assert.equal(e.code, 'NODUP_ERR_USAGE');
    assert.match(e.message, pattern);
    return true;
  });
  await refused(db.getOrCreateMany('pair', [{ a: '1', b: '2' }, { b: '2', a: '1' }]),
    /^keys\[1\] names "b", "a" where keys\[0\] names "a", "b"/);
  await refused(db.getOrCreateMany('pair', [{ a: '1', b: '2' }, { a: '1', b: '2' }, { a: '1' }]),
    /^keys\[2\] /);
  await refused(db.getOrCreateMany('pair', [{ a: '1', b: '2' }, { a: '1', c: '2' }]),
    /^keys\[1\] /);
  await refused(db.getOrCreateMany('t', [{ k: 'a' }, 'b']), /^keys\[1\] must be an object/);
  await refused(db.getOrCreateMany('t', [{ k: 'a' }, { k: undefined }]), /undefined/);
  await refused(db.getOrCreateMany('t', { k: 'a' }), /^keys must be an array/);
  await refused(db.getOrCreateMany('t', keys('a', 'b'), { defaults: [{ v: '1' }] }),
    /1 objects for 2 keys/);
  await refused(db.getOrCreateMany('t', keys('a', 'b'), { defaults: [{ v: '1' }, { n: 1 }] }),
    /^options\.defaults\[1\] names "n" where options\.defaults\[0\] names "v"/);
  await refused(db.getOrCreateMany(3, keys('a')), /table/);
  // Nothing of the refused calls was written.
  assert.equal((await db.getOrCreate('pair', { a: '1', b: '2' })).created, false);
  assert.equal((await db.getOrCreate('t', { k: 'a' })).created, true);
});

test('overlapping batches across connections and processes: one created per key', async () => {
  const KEYS = 30;
  const args = (seed) => [fresh.url, '4', '3', '20', String(KEYS), String(seed)];
  const worker = path.join(__dirname, 'many_worker.js');
  const children = [101, 202].map((seed) =>
    promisify(execFile)(process.execPath, [worker, ...args(seed)], { env: process.env })
      .then(({ stdout }) => JSON.parse(stdout)));
  // Here too: batches on four connections, and single getOrCreate calls
  // on another one, all at once with the children's.
  const here = sendBatches(fresh.url, 4, 3, 20, KEYS, 303);
  const single = connectMany(fresh.url, 1).then(async ([one]) => {
    const res = await Promise.all(Array.from({ length: KEYS }, (_, i) =>
      one.getOrCreate('t', { k: `key${KEYS - 1 - i}` }).then((r) => ({ k: `key${KEYS - 1 - i}`, ...r }))));
    await one.close();
    return res;
  });
  const results = (await Promise.all([...children, here, single])).flat();
  assert.equal(results.length, 3 * 4 * 3 * 20 + KEYS);
  const byKey = tallyByKey(results);
  assert.equal(byKey.size, KEYS);
  for (const [k, seen] of byKey) {
    assert.equal(seen.created, 1, `${k}: ${seen.created} callers got created`);
    assert.equal(seen.ids.size, 1, `${k}: ids ${[...seen.ids]}`);
  }
});
