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

module.exports = {
  nodup, backend, idColumn, freshDatabase, setupDatabase, connectMany, packageDir,
};
