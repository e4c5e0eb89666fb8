'use strict';
// One process of the seed tests (seeds.test.js): `connections`
// connections, each making `requests` concurrent "create team" requests,
// as a Prisma app's POST /teams handlers would. Prints one JSON line:
// [{ status, slug, id }, ...] with status 201 or, on any error, 409.
//
//   node seed_worker.js URL CONNECTIONS REQUESTS USER_PREFIX
const { nodup } = require('./helpers');

// The handler the seed's fix wanted: the slug comes from the database in
// the same insert that creates the team (nodup_slug_create retries a lost
// race itself), then the owner's membership, get-or-create on its key.
async function createTeam(db, userId, name) {
  try {
    const team = await db.slug('team', 'slug', name, { set: { name } });
    const owner = await db.getOrCreate('team_member', { team_id: team.id, user_id: userId },
      { defaults: { role: 'owner' } });
    return { status: 201, slug: team.slug, id: team.id, owner: owner.created };
  } catch (e) {
    return { status: 409, error: `${e.code}: ${e.message}` };
  }
}

async function main() {
  const [url, connections, requests, prefix] = process.argv.slice(2);
  const conns = await Promise.all(Array.from({ length: Number(connections) },
    () => nodup.connect(url)));
  const calls = [];
  conns.forEach((db, c) => {
    for (let r = 0; r < Number(requests); r++)
      calls.push(createTeam(db, `${prefix}-${c}-${r}`, 'My Team'));
  });
  const results = await Promise.all(calls);
  await Promise.all(conns.map((db) => db.close()));
  process.stdout.write(JSON.stringify(results) + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
