// Starts kinesalite on 127.0.0.1 only (its own CLI binds every interface).
// Usage: node kinesalite.js PORT [LEVELDB_PATH]; without a path the store is in memory.
'use strict'
const path = require('path')
const repo = path.resolve(__dirname, '..', '..')
const kinesalite = require(path.join(repo, 'node_modules', 'kinesalite'))

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node kinesalite.js PORT [LEVELDB_PATH]')
  process.exit(2)
}
const opts = { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 }
if (process.argv[3]) opts.path = process.argv[3]

const server = kinesalite(opts).listen(port, '127.0.0.1', () => {
  const a = server.address()
  console.log('kinesalite listening at http://%s:%d', a.address, a.port)
})
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))
