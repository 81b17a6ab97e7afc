// Compatibility test: the official Dfns TypeScript SDK (@dfns/sdk + @dfns/sdk-keysigner) against a real countersign
// server, for the Webhooks API. A receiver on loopback (so the server runs with COUNTERSIGN_WEBHOOKS_ALLOW_PRIVATE)
// checks every delivery the way the Dfns documentation tells receivers to: HMAC-SHA256 with the webhook secret over
// JSON.stringify(JSON.parse(body)), compared with crypto.timingSafeEqual to X-DFNS-WEBHOOK-SIGNATURE, and
// timestampSent within 5 minutes. The assertions follow the SDK's type declarations
// (node_modules/@dfns/sdk/generated/webhooks/types.d.ts), not the server's implementation.
// Server start-up, environment variables and the wire log: see helpers.mjs.

import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';

import {
  Precondition,
  SDK_VERSION,
  ISO,
  admin,
  expectDfnsError,
  isStr,
  need,
  shapeIssue,
  shapeIssueSummary,
  sleep,
  startServer,
  step,
  stopServer,
} from './helpers.mjs';

// The receiver runs on loopback, which the server refuses by default (SSRF); short retries keep the test quick.
process.env.COUNTERSIGN_WEBHOOKS_ALLOW_PRIVATE = 'true';
process.env.COUNTERSIGN_WEBHOOK_RETRY_SCHEDULE = '1s,2s,4s';

const USED_METHODS = ['createWebhook', 'listWebhooks', 'getWebhook', 'updateWebhook', 'pingWebhook', 'listWebhookEvents', 'getWebhookEvent', 'deleteWebhook'];
function sdk(method) {
  const g = admin.client.webhooks;
  if (typeof g?.[method] !== 'function') throw new Precondition(`skipped: @dfns/sdk ${SDK_VERSION} has no webhooks.${method}`);
  return g[method].bind(g);
}

// ---------------------------------------------------------------------------------------------------------------
// The receiver: records every delivery with its raw body and signature header.
// ---------------------------------------------------------------------------------------------------------------
const deliveries = [];
let receiver;
let receiverUrl;
async function startReceiver() {
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      deliveries.push({ body: Buffer.concat(chunks).toString('utf8'), signature: req.headers['x-dfns-webhook-signature'] });
      res.writeHead(200).end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${receiver.address().port}/dfns-hook`;
}

// The documented receiver check (Dfns webhooks docs, "Validating webhook signatures").
function verifyDelivery(secret, d) {
  const payload = JSON.parse(d.body);
  const expected = Buffer.from(`sha256=${crypto.createHmac('sha256', secret).update(JSON.stringify(payload)).digest('hex')}`);
  const got = Buffer.from(String(d.signature ?? ''));
  assert.ok(got.length === expected.length && crypto.timingSafeEqual(got, expected), `signature ${d.signature} does not verify over ${d.body}`);
  assert.ok(Math.abs(Date.now() / 1000 - payload.timestampSent) < 300, `timestampSent ${payload.timestampSent} is not within 5 minutes`);
  return payload;
}

async function waitForDelivery(pred, what) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const d = deliveries.find((x) => pred(JSON.parse(x.body)));
    if (d) return d;
    if (Date.now() > deadline) throw new Error(`no ${what} delivery within 60s; got kinds ${deliveries.map((x) => JSON.parse(x.body).kind).join(', ')}`);
    await sleep(100);
  }
}

function checkWebhook(where, w, { secret = false } = {}) {
  if (!/^wh-/.test(w?.id ?? '')) shapeIssue(where, `id ${w?.id} does not start with wh-`);
  if (!isStr(w?.url)) shapeIssue(where, 'url is not a string');
  if (!Array.isArray(w?.events) || !w.events.every(isStr)) shapeIssue(where, 'events is not an array of strings');
  if (!['Enabled', 'Disabled'].includes(w?.status)) shapeIssue(where, `status ${w?.status}`);
  if (w?.description !== undefined && !isStr(w.description)) shapeIssue(where, 'description is not a string');
  for (const f of ['dateCreated', 'dateUpdated']) if (!ISO.test(w?.[f] ?? '')) shapeIssue(where, `${f} ${w?.[f]} is not an ISO date`);
  if (secret && !/^whs-[A-Za-z0-9]+$/.test(w?.secret ?? '')) shapeIssue(where, `secret ${w?.secret} is not whs-…`);
  if (!secret && 'secret' in (w ?? {})) shapeIssue(where, 'secret must only be returned by createWebhook');
}
function checkEvent(where, e) {
  if (!/^whe-/.test(e?.id ?? '')) shapeIssue(where, `id ${e?.id} does not start with whe-`);
  if (!ISO.test(e?.date ?? '')) shapeIssue(where, `date ${e?.date} is not an ISO date`);
  if (!isStr(e?.kind)) shapeIssue(where, 'kind is not a string');
  if (typeof e?.data !== 'object' || e.data === null || Array.isArray(e.data)) shapeIssue(where, 'data is not an object');
  if (!isStr(e?.status)) shapeIssue(where, 'status is not a string');
  if (e?.error !== undefined && !isStr(e.error)) shapeIssue(where, 'error is not a string');
  if (typeof e?.timestampSent !== 'number') shapeIssue(where, 'timestampSent is not a number');
}

describe(`countersign webhooks with the official @dfns/sdk ${SDK_VERSION} + @dfns/sdk-keysigner`, () => {
  before(async () => {
    await startReceiver();
    await startServer();
  }, { timeout: 600_000 });
  after(async () => {
    await stopServer();
    receiver?.close();
  }, { timeout: 30_000 });

  const S = {};

  step(`@dfns/sdk ${SDK_VERSION} has every webhooks method this test calls`, async () => {
    const missing = USED_METHODS.filter((m) => typeof admin.client.webhooks?.[m] !== 'function');
    assert.deepEqual(missing, [], 'webhooks methods missing from the SDK');
  });

  step('createWebhook {url, events: ["*"], description} -> wh- id, Enabled, whs- secret (shown this once)', async () => {
    const w = await sdk('createWebhook')({ body: { url: receiverUrl, events: ['*'], description: 'compat <test> & more' } });
    checkWebhook('createWebhook', w, { secret: true });
    assert.equal(w.url, receiverUrl);
    assert.deepEqual(w.events, ['*']);
    assert.equal(w.status, 'Enabled');
    assert.equal(w.description, 'compat <test> & more');
    S.webhook = w;
  });

  step('createWebhook with an unknown event kind -> DfnsError 400', async () => {
    await expectDfnsError(sdk('createWebhook')({ body: { url: receiverUrl, events: ['wallet.transfer.initiated'] } }), 400, 'createWebhook(unknown kind)');
  });

  step('listWebhooks and getWebhook return it without its secret', async () => {
    const w = need(S.webhook, 'webhook');
    const l = await sdk('listWebhooks')();
    assert.ok(Array.isArray(l.items), 'items is not an array');
    const it = l.items.find((x) => x.id === w.id);
    assert.ok(it, 'listWebhooks lacks the webhook');
    checkWebhook('listWebhooks item', it);
    const g = await sdk('getWebhook')({ webhookId: w.id });
    checkWebhook('getWebhook', g);
    assert.equal(g.url, w.url);
  });

  step('updateWebhook changes the description; events stay', async () => {
    const w = need(S.webhook, 'webhook');
    const u = await sdk('updateWebhook')({ webhookId: w.id, body: { description: 'renamed' } });
    checkWebhook('updateWebhook', u);
    assert.equal(u.description, 'renamed');
    assert.deepEqual(u.events, ['*']);
  });

  step('a key created through the SDK arrives as key.created, signed as the docs check it', async () => {
    const w = need(S.webhook, 'webhook');
    const key = await admin.client.keys.createKey({ body: { scheme: 'ECDSA', curve: 'secp256k1' } });
    const d = await waitForDelivery((p) => p.kind === 'key.created' && p.data?.key?.id === key.id, 'key.created');
    const p = verifyDelivery(w.secret, d);
    assert.match(p.id, /^whe-/);
    assert.match(p.date, ISO);
    assert.equal(p.deliveryAttempt, 1);
    assert.equal(p.data.key.id, key.id);
    // The body is exactly what JSON.stringify would make of it, so a receiver may hash either.
    assert.equal(JSON.stringify(JSON.parse(d.body)), d.body);
    S.event = p;
  });

  step('pingWebhook -> {status: "200"}; the receiver got a signed ping', async () => {
    const w = need(S.webhook, 'webhook');
    const before = deliveries.length;
    const r = await sdk('pingWebhook')({ webhookId: w.id });
    assert.equal(r.status, '200', `ping answered ${JSON.stringify(r)}`);
    assert.ok(deliveries.length > before, 'no delivery reached the receiver');
    verifyDelivery(w.secret, deliveries[deliveries.length - 1]);
  });

  step('listWebhookEvents (kind, deliveryFailed filters) and getWebhookEvent show the delivered event', async () => {
    const w = need(S.webhook, 'webhook');
    const ev = need(S.event, 'delivered event');
    let l;
    const deadline = Date.now() + 30_000;
    for (;;) {
      l = await sdk('listWebhookEvents')({ webhookId: w.id, query: { kind: 'key.created', deliveryFailed: 'false', limit: 10 } });
      if (l.items.some((x) => x.id === ev.id && x.status === '200') || Date.now() > deadline) break;
      await sleep(200);
    }
    const it = l.items.find((x) => x.id === ev.id);
    assert.ok(it, `listWebhookEvents lacks ${ev.id}: ${JSON.stringify(l.items.map((x) => x.id))}`);
    for (const x of l.items) {
      checkEvent('listWebhookEvents item', x);
      assert.equal(x.kind, 'key.created');
    }
    assert.equal(it.status, '200');
    const failed = await sdk('listWebhookEvents')({ webhookId: w.id, query: { deliveryFailed: 'true' } });
    assert.deepEqual(failed.items, []);
    const g = await sdk('getWebhookEvent')({ webhookId: w.id, webhookEventId: ev.id });
    checkEvent('getWebhookEvent', g);
    assert.equal(g.id, ev.id);
    assert.deepEqual(g.data, ev.data);
  });

  step('deleteWebhook -> {deleted: true}; getWebhook then -> DfnsError 404', async () => {
    const w = need(S.webhook, 'webhook');
    const r = await sdk('deleteWebhook')({ webhookId: w.id });
    assert.deepEqual(r, { deleted: true });
    await expectDfnsError(sdk('getWebhook')({ webhookId: w.id }), 404, 'getWebhook(deleted)');
  });

  step('all responses match the @dfns/sdk type declarations', async () => {
    const { summary, count } = shapeIssueSummary();
    assert.deepEqual(summary, [], `${count} response field problem(s) against the @dfns/sdk ${SDK_VERSION} types`);
  });
});
