'use strict';
// A get-or-create hit through the Node binding against the same call in C
// (bench/node_goc.c), on PostgreSQL, one client, side by side in one run
// (issue 16: target >= 0.8x):
//
//   node bench/node_goc.js NODE_GOC_BIN PACKAGE_DIR [SECONDS] [ROUNDS] [OUT.md]
//
// `cmake --build build --target bench_node` runs it with the built
// programs. It starts a throwaway cluster (scripts/pgcluster.sh) in a new
// directory under /tmp and stops and removes it on any exit, failure or
// Ctrl-C; NODUP_BENCH_PG=CONNINFO uses that server instead (it drops and
// recreates table "t" there). The table goes to stdout (and OUT.md),
// progress to stderr.
//
// Cells, each a fresh process or connection on the same table of KEYS
// rows, hits on random keys, medians over ROUNDS (C and Node alternate):
//   c            the C loop: nodup_get_or_create() on one connection
//   node await   one call at a time, each awaited: the number the target is
//                on. On the loop (nodup_get_or_create_start/_poll, a uv_poll
//                watcher on the socket) since the key is prepared; before,
//                one async work item per call (thread pool and back)
//   node 2/4 in flight  the same connection with 2 or 4 calls queued: the
//                queue starts the next call while the last one settles
//   node await, before  only with NODUP_BENCH_BEFORE=PACKAGE_DIR: node await
//                through another build of the package (an earlier commit's),
//                so a change is measured against its predecessor in one run
//   floor        no database: round trips per second to an echo server
//                (bench/node_echo.c) from C (send, poll, recv) and from Node
//                (net.Socket, each awaited). Their ratio is the best any
//                awaited binding call that is one round trip can reach
//                against C, on this machine
//   node many x100  getOrCreateMany batches of 100 random keys, each
//                awaited: keys per second (one nodup_get_or_create_many
//                call, one round trip, per batch), against C's single calls
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const [cBin, packageDir, secondsArg, roundsArg, outFile] = process.argv.slice(2);
if (!cBin || !packageDir) {
  console.error('usage: node_goc.js NODE_GOC_BIN PACKAGE_DIR [SECONDS] [ROUNDS] [OUT.md]');
  process.exit(2);
}
const nodup = require(path.resolve(packageDir));
const before = process.env.NODUP_BENCH_BEFORE
  ? require(path.resolve(process.env.NODUP_BENCH_BEFORE)) : null;
const SECONDS = Number(secondsArg || 2);
const ROUNDS = Number(roundsArg || 3);
const KEYS = 1000;
const WARMUP = 0.3;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// The echo floor: node_echo (next to node_goc) serves on a socket in a
// directory of its own; C and Node ping it in turn.
const echoBin = path.join(path.dirname(cBin), 'node_echo');
let echo = null;

function startEcho() {
  const dir = fs.mkdtempSync('/tmp/nodup-echo.');
  const sock = path.join(dir, 's');
  const child = require('node:child_process').spawn(echoBin, ['serve', sock],
    { stdio: 'ignore' });
  echo = { dir, sock, child };
  for (let i = 0; i < 100 && !fs.existsSync(sock); i++) execFileSync('sleep', ['0.05']);
  if (!fs.existsSync(sock)) throw new Error(`node_echo did not start (${echoBin})`);
}

function stopEcho() {
  if (echo === null) return;
  echo.child.kill();
  fs.rmSync(echo.dir, { recursive: true, force: true });
  echo = null;
}

function echoC() {
  const r = spawnSync(echoBin, ['ping', echo.sock, String(SECONDS)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node_echo: ${r.stderr}`);
  return Number(r.stdout.trim());
}

function echoNode() {
  const net = require('node:net');
  return new Promise((resolve, reject) => {
    const s = net.connect(echo.sock, async () => {
      let wake = null;
      s.on('data', () => { const w = wake; wake = null; w(); });
      const roundTrip = () => new Promise((res) => { wake = res; s.write('ping'); });
      let n = 0;
      const start = performance.now() / 1000;
      const from = start + WARMUP, until = from + SECONDS;
      for (;;) {
        const t = performance.now() / 1000;
        if (t >= until) break;
        await roundTrip();
        if (t >= from) n++;
      }
      s.once('close', () => resolve(n / SECONDS));
      s.end();
    });
    s.on('error', reject);
  });
}

function runC() {
  const r = spawnSync(cBin, [conninfo, String(SECONDS), String(KEYS)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node_goc: ${r.stderr}`);
  return Number(r.stdout.trim());
}

// `inFlight` loops on one connection, each awaiting its own steps, for
// SECONDS after WARMUP: step(db, nextKey) asks for keys from nextKey()
// (random hits) and resolves with how many. Returns keys per second.
async function runNode(inFlight, step, lib = nodup) {
  const db = await lib.connect(conninfo);
  let rng = 12345 >>> 0;
  const nextKey = () => {
    rng = (Math.imul(rng, 1664525) + 1013904223) >>> 0;
    return `h${(rng >>> 8) % KEYS + 1}`;
  };
  let keys = 0;
  const start = performance.now() / 1000;
  const from = start + WARMUP, until = from + SECONDS;
  async function loop() {
    for (;;) {
      const t = performance.now() / 1000;
      if (t >= until) return;
      const n = await step(db, nextKey);
      if (t >= from) keys += n;
    }
  }
  await Promise.all(Array.from({ length: inFlight }, loop));
  await db.close();
  return keys / SECONDS;
}

// One getOrCreate.
async function single(db, nextKey) {
  const r = await db.getOrCreate('t', { k: nextKey() });
  if (r.created) throw new Error('a miss');
  return 1;
}

// One getOrCreateMany of `batch` keys.
function many(batch) {
  return async (db, nextKey) => {
    const keys = Array.from({ length: batch }, () => ({ k: nextKey() }));
    const res = await db.getOrCreateMany('t', keys);
    if (res.some((r) => r.created)) throw new Error('a miss');
    return batch;
  };
}

// The throwaway cluster: started here, stopped by stopCluster() on every
// way out (the handlers below).
const pgcluster = path.join(__dirname, '..', 'scripts', 'pgcluster.sh');
let clusterBase = null;

function startCluster() {
  clusterBase = fs.mkdtempSync('/tmp/nodup-bench.');
  fs.chmodSync(clusterBase, 0o755);  // as root the server runs as pgtest: it must get in
  const sock = path.join(clusterBase, 'pg', 'sock');
  execFileSync(pgcluster, ['start', sock], { stdio: 'inherit' });
  return `host=${sock} user=postgres dbname=postgres`;
}

function stopCluster() {
  if (clusterBase === null) return;
  const base = clusterBase;
  clusterBase = null;
  const r = spawnSync(pgcluster, ['stop', path.join(base, 'pg', 'sock')], { stdio: 'inherit' });
  if (r.status !== 0) console.error(`node_goc.js: could not stop the cluster in ${base}/pg`);
  fs.rmSync(base, { recursive: true, force: true });
}

process.on('exit', () => { stopEcho(); stopCluster(); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

let conninfo;

async function main() {
  conninfo = process.env.NODUP_BENCH_PG || startCluster();
  const admin = await nodup.connect(conninfo);
  await admin.exec('DROP TABLE IF EXISTS "t"');
  await admin.exec('CREATE TABLE "t" ("id" serial PRIMARY KEY, "k" text UNIQUE, "v" text) ' +
                   'WITH (autovacuum_enabled = off)');
  await admin.exec(`INSERT INTO "t" ("k", "v") SELECT 'h' || g, 'v' FROM generate_series(1, ${KEYS}) AS g`);
  await admin.exec('ANALYZE "t"');
  await admin.close();

  const cells = { 'c': [], 'node await': [], 'node 2 in flight': [], 'node 4 in flight': [],
    'node many x100': [] };
  if (before) cells['node await, before'] = [];
  const floor = { 'c': [], 'node': [] };
  startEcho();
  for (let round = 0; round < ROUNDS; round++) {
    process.stderr.write(`round ${round + 1}/${ROUNDS}\n`);
    // Alternate who goes first, so drift in the machine's load is shared.
    if (round % 2 === 0) cells.c.push(runC());
    cells['node await'].push(await runNode(1, single));
    if (round % 2 === 1) cells.c.push(runC());
    cells['node 2 in flight'].push(await runNode(2, single));
    cells['node 4 in flight'].push(await runNode(4, single));
    cells['node many x100'].push(await runNode(1, many(100)));
    if (before) cells['node await, before'].push(await runNode(1, single, before));
    if (round % 2 === 0) floor.c.push(echoC());
    floor.node.push(await echoNode());
    if (round % 2 === 1) floor.c.push(echoC());
  }
  stopEcho();
  const c = median(cells.c);
  const lines = [
    `get-or-create hits, PostgreSQL, one connection, ${SECONDS} s x ${ROUNDS} rounds ` +
      `(medians), libnodup ${nodup.libversion}, node ${process.version}`, '',
    '| method | keys/s | vs C |', '|---|---:|---:|',
    ...Object.entries(cells).map(([name, xs]) =>
      `| ${name} | ${Math.round(median(xs))} | ${(median(xs) / c).toFixed(2)}x |`),
    '', 'The floor, no database: awaited round trips to an echo server (bench/node_echo.c)', '',
    '| method | round trips/s | vs C |', '|---|---:|---:|',
    `| c | ${Math.round(median(floor.c))} | 1.00x |`,
    `| node (net.Socket) | ${Math.round(median(floor.node))} | ` +
      `${(median(floor.node) / median(floor.c)).toFixed(2)}x |`,
  ];
  console.log(lines.join('\n'));
  if (outFile) fs.writeFileSync(outFile, lines.join('\n') + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
