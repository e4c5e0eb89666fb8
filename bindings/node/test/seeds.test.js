'use strict';
// The seeds as tests (issue 16), through the addon on this engine:
//  - seed 002: concurrent "create team named My Team" requests, over
//    several connections in several processes, each get a team, no
//    duplicate slug, no 409: my-team, my-team-2, ... my-team-N.
//  - seed 004: concurrent "open the conversation with this agency"
//    requests on a partial unique key: exactly one 201, the rest 200,
//    all on the same conversation.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { nodup, idColumn, setupDatabase, connectMany } = require('./helpers');

const PROCESSES = 3;
const CONNECTIONS = 4;   // per process
const REQUESTS = 5;      // per connection, all at once

let fresh;

before(async () => {
  fresh = await setupDatabase('seeds', [
    `CREATE TABLE "team" (${idColumn}, "slug" varchar(50) NOT NULL UNIQUE, "name" text NOT NULL)`,
    `CREATE TABLE "team_member" (${idColumn}, "team_id" bigint NOT NULL REFERENCES "team" ("id"),
       "user_id" text NOT NULL, "role" text NOT NULL, UNIQUE ("team_id", "user_id"))`,
    `CREATE TABLE "conversations" (${idColumn}, "context_type" text NOT NULL,
       "context_id" text NOT NULL, "created_by" text NOT NULL, "initial_message" text)`,
    `CREATE UNIQUE INDEX "unique_agency_user_conversation" ON "conversations"
       ("context_type", "context_id", "created_by") WHERE "context_type" = 'agency_inquiry'`,
  ]);
});

after(async () => { await fresh.drop(); });

test('seed 002: concurrent team creation gets sequential unique slugs, no 409', async () => {
  const worker = path.join(__dirname, 'seed_worker.js');
  const outputs = await Promise.all(Array.from({ length: PROCESSES }, (_, p) =>
    promisify(execFile)(process.execPath,
      [worker, fresh.url, String(CONNECTIONS), String(REQUESTS), `user${p}`],
      { env: process.env })));
  const results = outputs.flatMap(({ stdout }) => JSON.parse(stdout));
  const total = PROCESSES * CONNECTIONS * REQUESTS;
  assert.equal(results.length, total);
  assert.deepEqual(results.filter((r) => r.status !== 201), []);
  const slugs = results.map((r) => r.slug);
  assert.equal(new Set(slugs).size, total, 'duplicate slugs');
  const expected = ['my-team', ...Array.from({ length: total - 1 }, (_, i) => `my-team-${i + 2}`)];
  assert.deepEqual([...slugs].sort(), [...expected].sort());
  assert.equal(new Set(results.map((r) => r.id)).size, total);
  assert.ok(results.every((r) => r.owner === true), 'every team got its owner');
});

test('seed 004: one conversation per agency and user, exactly one 201', async () => {
  const conns = await connectMany(fresh.url, 8);
  const open = (db, i) => db.getOrCreate('conversations',
    { context_type: 'agency_inquiry', context_id: 'agency-7', created_by: 'user-1' },
    { where: `"context_type" = 'agency_inquiry'`,
      defaults: { initial_message: `hello from request ${i}` } })
    .then((r) => ({ status: r.created ? 201 : 200, id: r.id }));
  const responses = await Promise.all(Array.from({ length: 32 }, (_, i) => open(conns[i % 8], i)));
  await Promise.all(conns.map((db) => db.close()));
  assert.equal(responses.filter((r) => r.status === 201).length, 1);
  assert.equal(responses.filter((r) => r.status === 200).length, 31);
  assert.equal(new Set(responses.map((r) => r.id)).size, 1);
});
