// Generates N distinct, signed webhook deliveries for one load run.
// usage: node gen_run.js TAG N [UPDATE_FRACTION=0.2]
//   -> $PEER_RUN_DIR/events_TAG.bin  records "<Stripe-Signature>\n<len>\n<body>" (read by wrk_webhook.lua)
//   -> $PEER_RUN_DIR/manifest_TAG.json  {tag, n, kinds: 'c'/'u' per record, ...}
// created: a brand-new customer (cus_ + 14 random chars); updated: a seed customer (no customer repeats
// within a run), event.created = now (> seed time), metadata.bench_run=TAG to verify rows afterwards.
'use strict';
const fs = require('fs');
const Stripe = require('stripe');
const { makeCustomer, makeEvent, serialize, rid } = require('./events');
const [tag, nStr, fStr] = process.argv.slice(2);
const N = +nStr, F = fStr === undefined ? 0.2 : +fStr;
const SECRET = process.env.WEBHOOK_SECRET || 'whsec_test_peer_benchmark_secret';
const stripe = new Stripe('sk_test_dummy');
const RUN = process.env.PEER_RUN_DIR || '/tmp/peer/run';
const seeds = JSON.parse(fs.readFileSync(`${RUN}/seed_ids.json`));
for (let i = seeds.length - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1)); [seeds[i], seeds[j]] = [seeds[j], seeds[i]]; }
const now = Math.floor(Date.now() / 1000);
const fd = fs.openSync(`${RUN}/events_${tag}.bin`, 'w');
let kinds = '', bytes = 0, u = 0, bufs = [], pending = 0; const ids = [];
for (let i = 0; i < N; i++) {
  let ev;
  if (Math.random() < F && u < seeds.length) {
    const id = seeds[u++]; ids.push(id);
    ev = makeEvent('customer.updated', makeCustomer(id, i, now - 3600, { bench_run: tag, bench_kind: 'u' }), now,
      { email: 'previous.' + rid(6) + '@example.com', metadata: { plan: 'free' } });
    kinds += 'u';
  } else {
    const id = 'cus_' + rid(14); ids.push(id);
    ev = makeEvent('customer.created', makeCustomer(id, i, now, { bench_run: tag, bench_kind: 'c' }), now);
    kinds += 'c';
  }
  const body = serialize(ev);
  const sig = stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET });
  const b = Buffer.from(body);
  bytes += b.length;
  bufs.push(Buffer.from(`${sig}\n${b.length}\n`), b); pending += b.length;
  if (pending > 4 << 20) { fs.writeSync(fd, Buffer.concat(bufs)); bufs = []; pending = 0; }
}
fs.writeSync(fd, Buffer.concat(bufs)); fs.closeSync(fd);
fs.writeFileSync(`${RUN}/manifest_${tag}.json`, JSON.stringify({ tag, n: N, signedAt: now, avgBodyBytes: Math.round(bytes / N), kinds, ids }));
console.log(`generated ${N} events for ${tag}: ${(kinds.match(/u/g) || []).length} updates, avg body ${Math.round(bytes / N)} B`);
