'use strict';
// What the Node binding's tests share: the package under test, the engine
// (NODUP_TEST_BACKEND, set by ctest: sqlite or pg) and a fresh database
// per test file, as tests/harness.c gives the C suites.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const packageDir = process.env.NODUP_NODE_DIR ||
  path.join(__dirname, '..', '..', '..', 'build', 'node');
const nodup = require(packageDir);
const backend = process.env.NODUP_TEST_BACKEND || 'sqlite';

// The primary key column's DDL on this engine.
const idColumn = backend === 'pg' ? '"id" bigserial PRIMARY KEY' : '"id" INTEGER PRIMARY KEY';

// A new empty database: { url, drop() }. PostgreSQL: a database named
// after the file and the process on the test cluster (NODUP_TEST_PG, a
// conninfo whose dbname the URL's later dbname= overrides). SQLite: a file
// in a new temporary directory.
async function freshDatabase(name) {
  if (backend === 'pg') {
    const admin = process.env.NODUP_TEST_PG;
    if (!admin) throw new Error('NODUP_TEST_PG is not set (ctest sets it)');
    const dbname = `nodup_node_${name}_${process.pid}`;
    const a = await nodup.connect(admin);
    await a.exec(`DROP DATABASE IF EXISTS "${dbname}"`);
    await a.exec(`CREATE DATABASE "${dbname}"`);
    await a.close();
    return {
      url: `${admin} dbname=${dbname}`,
      async drop() {
        const b = await nodup.connect(admin);
        await b.exec(`DROP DATABASE IF EXISTS "${dbname}" WITH (FORCE)`);
        await b.close();
      },
    };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `nodup-node-${name}-`));
  return {
    url: `file:${dir}/test.db?mode=rwc`,
    async drop() { fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

// freshDatabase(name) with `statements` (DDL) run in it.
async function setupDatabase(name, statements) {
  const fresh = await freshDatabase(name);
  const db = await nodup.connect(fresh.url);
  for (const sql of statements) await db.exec(sql);
  await db.close();
  return fresh;
}

// `n` connections to `url`.
function connectMany(url, n) {
  return Promise.all(Array.from({ length: n }, () => nodup.connect(url)));
}

// Results of concurrent calls, [{ k, id, created }, ...], by key:
// Map k -> { created: how many got created, ids: Set of the ids seen }.
function tallyByKey(results) {
  const byKey = new Map();
  for (const r of results) {
    const seen = byKey.get(r.k) || { created: 0, ids: new Set() };
    seen.created += r.created ? 1 : 0;
    seen.ids.add(r.id);
    byKey.set(r.k, seen);
  }
  return byKey;
}

// A batch of keys for getOrCreateMany from `names`: `size` of them drawn
// with repeats in an order fixed by `seed` (mulberry32), so that
// concurrent batches overlap in different orders.
function batchOf(names, size, seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6D2B79F5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: size }, () => names[Math.floor(next() * names.length)]);
}

module.exports = {
  nodup, backend, idColumn, freshDatabase, setupDatabase, connectMany, packageDir,
  tallyByKey, batchOf,
};
