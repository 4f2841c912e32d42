#!/usr/bin/env node
// kpl-deaggregate.js de-aggregates KPL aggregated Kinesis records with the npm
// package aws-kinesis-agg (pinned in package.json; run `npm ci` first), an
// implementation independent of ferry's aggregation package, which tests
// against it.
//
// stdin:  one JSON object per line, a Kinesis record:
//           {"partitionKey": "...", "explicitHashKey": "..." (optional), "data": "<base64>"}
// stdout: one JSON object per user record, in order:
//           {"aggregate": <0-based input line>, "partitionKey": "...",
//            "explicitHashKey": "..." ("" for none), "data": "<base64>"}
//
// MD5 digests are verified. Exits 1 (with a message on stderr) on the first
// record that fails to de-aggregate or on malformed input.
'use strict';

const path = require('path');
const readline = require('readline');

const agg = require(path.join(__dirname, '..', 'node_modules', 'aws-kinesis-agg'));

function fail(msg) {
  process.stderr.write(`kpl-deaggregate: ${msg}\n`);
  process.exit(1);
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
let line = 0;
const out = [];

rl.on('line', (text) => {
  const index = line++;
  if (text.trim() === '') {
    return;
  }
  let rec;
  try {
    rec = JSON.parse(text);
  } catch (e) {
    fail(`line ${index + 1}: ${e.message}`);
  }
  const kinesisRecord = {
    partitionKey: rec.partitionKey,
    explicitPartitionKey: rec.explicitHashKey || undefined,
    sequenceNumber: String(index),
    data: rec.data,
  };
  agg.deaggregateSync(kinesisRecord, true, (err, userRecords) => {
    if (err) {
      fail(`line ${index + 1}: ${err.message || err}`);
    }
    for (const ur of userRecords) {
      out.push(JSON.stringify({
        aggregate: index,
        partitionKey: ur.partitionKey,
        explicitHashKey: ur.explicitPartitionKey === undefined || ur.explicitPartitionKey === null
          ? '' : String(ur.explicitPartitionKey),
        data: ur.data,
      }));
    }
  });
  if (out.length >= 1024) {
    process.stdout.write(out.join('\n') + '\n');
    out.length = 0;
  }
});

rl.on('close', () => {
  if (out.length > 0) {
    process.stdout.write(out.join('\n') + '\n');
  }
});
