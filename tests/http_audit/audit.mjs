// The GraphQL-over-HTTP spec's own audit (graphql-http's auditServer) against a running server.
//
//   PARLEY_TOKEN=<api token> node audit.mjs http://127.0.0.1:8000/graphql
//
// Every audit request carries `Authorization: Bearer <token>` (through auditServer's fetchFn)
// and gives up after 10 s. Prints one JSON document on stdout:
//   {"results": [{"id", "name", "status", "reason"}, ...]}
// and a readable line per audit on stderr. Exits 1 when a MUST or SHOULD audit is not ok.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const token = process.env.PARLEY_TOKEN;
if (!url || !token) {
  console.error('usage: PARLEY_TOKEN=<token> node audit.mjs <graphql url>');
  process.exit(2);
}

function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers, signal: AbortSignal.timeout(10_000) });
}

const results = await auditServer({ url, fetchFn });
const rows = results.map(({ id, name, status, reason }) => ({ id, name, status, reason: reason ?? null }));
for (const row of rows) {
  console.error(`${row.status.padEnd(6)} ${row.id} ${row.name}${row.reason ? ` -- ${row.reason}` : ''}`);
}
process.stdout.write(JSON.stringify({ results: rows }) + '\n');
const failed = rows.some((row) => row.status !== 'ok' && !row.name.startsWith('MAY '));
process.exitCode = failed ? 1 : 0;
