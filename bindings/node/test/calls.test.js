'use strict';
// getOrCreate, updateOrCreate, check and slug on one connection: results,
// values of every JS type, and the errors each rejects with.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { nodup, backend, idColumn, setupDatabase } = require('./helpers');

let fresh, db;

before(async () => {
  fresh = await setupDatabase('calls', [
    `CREATE TABLE "t" (${idColumn}, "k" text UNIQUE, "v" text, "n" integer)`,
    `CREATE TABLE "u" (${idColumn}, "k" text UNIQUE, "email" text, "n" integer,
       CONSTRAINT "u_email_key" UNIQUE ("email"), CONSTRAINT "u_n_positive" CHECK ("n" > 0))`,
    `CREATE TABLE "team" (${idColumn}, "slug" varchar(50) NOT NULL UNIQUE, "name" text NOT NULL)`,
  ]);
  db = await nodup.connect(fresh.url);
});

after(async () => {
  await db.close();
  await fresh.drop();
});

test('created, then existing with the same id', async () => {
  const first = await db.getOrCreate('t', { k: 'a' });
  assert.equal(first.created, true);
  assert.equal(typeof first.id, 'string');
  const second = await db.getOrCreate('t', { k: 'a' });
  assert.deepEqual(second, { id: first.id, created: false });
});

test('defaults are written on create only', async () => {
  await db.getOrCreate('t', { k: 'd' }, { defaults: { v: 'first', n: 1 } });
  const again = await db.getOrCreate('t', { k: 'd' }, { defaults: { v: 'second', n: 2 } });
  assert.equal(again.created, false);
  // updateOrCreate writes nothing when the row already holds the values.
  const same = await db.updateOrCreate('t', { k: 'd' }, { set: { v: 'first', n: 1 } });
  assert.equal(same.outcome, 'unchanged');
});

test('values: number, bigint, boolean, Date, null; undefined leaves a default out', async () => {
  const r = await db.getOrCreate('t', { k: 12345678901234567890n },
    { defaults: { n: true, v: new Date(Date.UTC(2024, 0, 2)), skipped: undefined } });
  assert.equal(r.created, true);
  const same = await db.updateOrCreate('t', { k: '12345678901234567890' },
    { set: { n: 1, v: '2024-01-02T00:00:00.000Z' } });
  assert.deepEqual(same, { id: r.id, created: false, outcome: 'unchanged' });
  const n = await db.getOrCreate('t', { k: 42 }, { defaults: { v: null, n: 7.0 } });
  assert.equal((await db.getOrCreate('t', { k: '42' })).id, n.id);
});

test('a null key value rejects with NODUP_ERR_NULL_KEY', async () => {
  await assert.rejects(db.getOrCreate('t', { k: null }), (e) => {
    assert.ok(e instanceof Error);
    assert.equal(e.code, 'NODUP_ERR_NULL_KEY');
    assert.equal(e.errno, nodup.codes.NODUP_ERR_NULL_KEY);
    assert.match(e.message, /"k"/);
    return true;
  });
});

test('a key no unique index backs rejects with NODUP_ERR_UNBACKED and the DDL', async () => {
  await assert.rejects(db.getOrCreate('t', { v: 'x' }), (e) => {
    assert.equal(e.code, 'NODUP_ERR_UNBACKED');
    assert.equal(e.errno, 7);
    assert.match(e.message, /CREATE UNIQUE INDEX/);
    return true;
  });
  await assert.rejects(db.check('t', ['v']), { code: 'NODUP_ERR_UNBACKED' });
  const backed = await db.check('t', ['k']);
  assert.equal(typeof backed.index, 'string');
  assert.ok(backed.index.length > 0);
});

test('another constraint rejects with NODUP_ERR_CONSTRAINT naming it', async () => {
  await db.getOrCreate('u', { k: 'a' }, { defaults: { email: 'e@x', n: 1 } });
  await assert.rejects(db.getOrCreate('u', { k: 'b' }, { defaults: { email: 'e@x', n: 1 } }),
    (e) => {
      assert.equal(e.code, 'NODUP_ERR_CONSTRAINT');
      assert.equal(e.sqlstate, '23505');
      // SQLite does not name unique indexes in its errors: it names the column.
      if (backend === 'pg') assert.equal(e.constraint, 'u_email_key');
      else assert.match(e.message, /email/);
      return true;
    });
  await assert.rejects(db.getOrCreate('u', { k: 'c' }, { defaults: { email: 'f@x', n: -1 } }),
    (e) => {
      assert.equal(e.code, 'NODUP_ERR_CONSTRAINT');
      assert.equal(e.sqlstate, '23514');
      assert.match(e.message, /u_n_positive/);
      if (backend === 'pg') assert.equal(e.constraint, 'u_n_positive');
      return true;
    });
  // Nothing was created by the refused calls.
  assert.equal((await db.getOrCreate('u', { k: 'b' }, { defaults: { email: 'g@x', n: 1 } }))
    .created, true);
});

test('updateOrCreate: created, updated, unchanged', async () => {
  const a = await db.updateOrCreate('t', { k: 'u1' }, { set: { v: 'one' }, create: { n: 5 } });
  assert.deepEqual(a, { id: a.id, created: true, outcome: 'created' });
  const b = await db.updateOrCreate('t', { k: 'u1' }, { set: { v: 'two' }, create: { n: 6 } });
  assert.deepEqual(b, { id: a.id, created: false, outcome: 'updated' });
  const c = await db.updateOrCreate('t', { k: 'u1' }, { set: { v: 'two', n: 5 } });
  assert.deepEqual(c, { id: a.id, created: false, outcome: 'unchanged' });
  await assert.rejects(db.updateOrCreate('t', { k: 'u1' }, { set: { k: 'x' } }),
    { code: 'NODUP_ERR_USAGE' });
});

test('slug: my-team, then my-team-2, and the row gets its columns', async () => {
  const first = await db.slug('team', 'slug', 'My Team', { set: { name: 'My Team' } });
  assert.equal(first.slug, 'my-team');
  const second = await db.slug('team', 'slug', 'My Team!', { set: { name: 'My Team!' } });
  assert.equal(second.slug, 'my-team-2');
  assert.notEqual(first.id, second.id);
  const reserved = await db.slug('team', 'slug', 'Admin', { set: { name: 'x' } });
  assert.equal(reserved.slug, 'admin-2');
  const free = await db.slug('team', 'slug', 'Settings', { set: { name: 'x' }, reserved: [] });
  assert.equal(free.slug, 'settings');
  await assert.rejects(db.slug('team', 'name', 'x'), { code: 'NODUP_ERR_UNBACKED' });
});

test('argument errors reject (never throw) with TypeError NODUP_ERR_USAGE', async () => {
  const cases = [
    () => db.getOrCreate(3, { k: 'a' }),
    () => db.getOrCreate('t', {}),
    () => db.getOrCreate('t', 'k'),
    () => db.getOrCreate('t', { k: undefined }),
    () => db.getOrCreate('t', { k: {} }),
    () => db.getOrCreate('t', { k: 'a' }, { where: 3 }),
    () => db.getOrCreate('t', { k: 'a\u0000b' }),
    () => db.check('t', []),
    () => db.slug('team', 'slug', 'x', { maxLength: 3 }),
    () => nodup.connect(),
  ];
  for (const call of cases) {
    const p = call();
    assert.ok(p instanceof Promise);
    await assert.rejects(p, (e) => {
      assert.ok(e instanceof TypeError, String(e));
      assert.equal(e.code, 'NODUP_ERR_USAGE');
      assert.equal(e.errno, 2);
      return true;
    });
  }
  assert.throws(() => new nodup.Connection(), { code: 'NODUP_ERR_USAGE' });
});

test('an unknown table or column', async () => {
  await assert.rejects(db.getOrCreate('nosuch', { k: 'a' }), { code: 'NODUP_ERR_NO_TABLE' });
  await assert.rejects(db.getOrCreate('t', { nosuch: 'a' }), { code: 'NODUP_ERR_NO_COLUMN' });
});
