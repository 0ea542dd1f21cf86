// Seeds N customers through the peer's own processWebhook (in-process, no HTTP) so that
// 20% of the load can be customer.updated events for customers that already exist.
// usage: node seed.js N   -> writes $PEER_RUN_DIR/seed_ids.json
'use strict';
const fs = require('fs');
const Stripe = require('stripe');
const { StripeSync } = require('@supabase/stripe-sync-engine');
const { makeCustomer, makeEvent, serialize, rid } = require('./events');

const N = +(process.argv[2] || 50000);
const SECRET = process.env.WEBHOOK_SECRET || 'whsec_test_peer_benchmark_secret';
const sync = new StripeSync({
  poolConfig: { connectionString: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:55432/peer', max: 10 },
  stripeSecretKey: 'sk_test_dummy_never_used', stripeWebhookSecret: SECRET,
});
const stripe = new Stripe('sk_test_dummy');

(async () => {
  const created = Math.floor(Date.now() / 1000) - 3600; // an hour ago: every later update is newer
  const ids = [];
  let next = 0;
  const worker = async () => {
    while (next < N) {
      const i = next++;
      const id = 'cus_' + rid(14);
      ids[i] = id;
      const body = serialize(makeEvent('customer.created', makeCustomer(id, i, created, { bench_run: 'seed', bench_kind: 'c' }), created));
      await sync.processWebhook(body, stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET }));
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 10 }, worker));
  fs.writeFileSync(`${process.env.PEER_RUN_DIR || '/tmp/peer/run'}/seed_ids.json`, JSON.stringify(ids));
  console.log(`seeded ${N} customers in ${(Date.now() - t0) / 1000}s`);
  await sync.postgresClient.close();
})().catch((e) => { console.error(e); process.exit(1); });
