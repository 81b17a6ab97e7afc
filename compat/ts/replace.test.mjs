// Compatibility test: speed-up and cancel with the official Dfns TypeScript SDK (@dfns/sdk 0.8.21:
// wallets.speedUpTransaction, cancelTransaction, speedUpTransfer, cancelTransfer) against a real countersign server
// and its EthereumSepolia dev chain. The SDK types each answer as a TransactionRequest (the replacement, requestBody
// {kind: SpeedUpTransaction|CancelTransaction, txHash, signedTx}) and the replaced request's replacementId as "the id
// of the replacement transaction (cancel or speed-up) issued for this transfer" (generated/wallets/types.d.ts).
//
// Broadcast-but-not-mined transactions are made on purpose: a kind Eip1559 broadcast whose maxFeePerGas (1 wei) is
// below the base fee stays in the pool, and every later nonce of the wallet waits behind it.

import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';

import { SDK_VERSION, Precondition, admin, clip, expectDfnsError, isStr, need, pathOf, raw, sleep, startServer, step, stopServer, uniq, wire } from './helpers.mjs';

const NETWORK = 'EthereumSepolia';
const TO = '0x000000000000000000000000000000000000dEaD';
const STATUSES = ['Pending', 'Executing', 'Broadcasted', 'Confirmed', 'Failed', 'Rejected'];
const HEX32 = /^0x[0-9a-f]{64}$/;

function sdk(method) {
  const g = admin.client.wallets;
  if (typeof g?.[method] !== 'function') throw new Precondition(`skipped: @dfns/sdk ${SDK_VERSION} has no wallets.${method}`);
  return g[method].bind(g);
}

describe(`countersign speed-up and cancel with the official @dfns/sdk ${SDK_VERSION}`, () => {
  before(startServer, { timeout: 600_000 });
  after(stopServer, { timeout: 30_000 });

  const S = {};
  async function until(what, read, done, ms = 30_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await read();
      if (done(v)) return v;
      assert.ok(Date.now() < deadline, `${what}: not reached within ${ms / 1000} s; last: ${clip(JSON.stringify(v))}`);
      await sleep(100);
    }
  }
  const getTx = (id) => sdk('getTransaction')({ walletId: S.wallet.id, transactionId: id });
  const getXfr = (id) => sdk('getTransfer')({ walletId: S.wallet.id, transferId: id });
  const status = (want) => (r) => r.status === want;
  async function stuck(value) {
    const tx = await sdk('broadcastTransaction')({
      walletId: S.wallet.id,
      body: { kind: 'Eip1559', to: TO, value, gasLimit: '21000', maxFeePerGas: '1', maxPriorityFeePerGas: '1' },
    });
    return until(`stuck ${tx.id} Broadcasted`, () => getTx(tx.id), status('Broadcasted'));
  }
  async function queuedTransfer(amount) {
    const tr = await sdk('transferAsset')({ walletId: S.wallet.id, body: { kind: 'Native', to: TO, amount } });
    return until(`transfer ${tr.id} Broadcasted`, () => getXfr(tr.id), status('Broadcasted'));
  }
  function assertReplacement(what, r, kind, replaced) {
    const j = clip(JSON.stringify(r), 900);
    assert.ok(isStr(r?.id) && r.id.startsWith('tx-'), `${what}: id must start "tx-": ${j}`);
    assert.equal(r.walletId, S.wallet.id, `${what}: walletId: ${j}`);
    assert.equal(r.network, NETWORK, `${what}: network: ${j}`);
    assert.ok(STATUSES.includes(r.status) && !['Failed', 'Rejected'].includes(r.status), `${what}: status: ${j}`);
    assert.equal(r.requestBody?.kind, kind, `${what}: requestBody.kind: ${j}`);
    assert.equal(r.requestBody?.txHash, replaced.txHash, `${what}: requestBody.txHash is the replaced transaction's: ${j}`);
    assert.match(r.requestBody?.signedTx ?? '', /^0x02[0-9a-f]+$/, `${what}: requestBody.signedTx (an EIP-1559 envelope): ${j}`);
    assert.equal(r.metadata, undefined, `${what}: a TransactionRequest has no metadata: ${j}`);
    const sent = wire.filter((e) => e.via === 'sdk' && e.method === 'POST' && pathOf(e.url).endsWith(kind === 'SpeedUpTransaction' ? '/speed-up' : '/cancel')).at(-1);
    assert.ok(sent?.userAction, `${what}: the SDK signs a user action`);
  }

  step('a funded EthereumSepolia wallet', async () => {
    S.wallet = await sdk('createWallet')({ body: { network: NETWORK, name: `compat-replace-${uniq()}` } });
    const res = await raw('POST', '/dev/faucet', { token: admin.token, body: JSON.stringify({ network: NETWORK, address: S.wallet.address, amount: '1000000000000000000' }) });
    assert.equal(res.status, 200, `${res.what} -> ${res.status} ${clip(res.text)}`);
  });

  step('speedUpTransaction: the stuck transaction is mined with the replacement hash and fee', async () => {
    need(S.wallet, 'wallet');
    const a = await stuck('1000');
    const r = await sdk('speedUpTransaction')({ walletId: S.wallet.id, transactionId: a.id });
    assertReplacement('speedUpTransaction', r, 'SpeedUpTransaction', a);
    assert.equal((await getTx(a.id)).replacementId, r.id, 'the original names its replacement');
    const done = await until('original Confirmed', () => getTx(a.id), status('Confirmed'));
    const rr = await until('replacement Confirmed', () => getTx(r.id), status('Confirmed'));
    assert.match(done.txHash, HEX32);
    assert.equal(done.txHash, rr.txHash, 'the original reports the hash that was mined');
    assert.equal(done.fee, rr.fee, 'and its fee');
    S.confirmed = done;
  });

  step('speedUpTransfer and cancelTransaction: a transfer queued behind a stuck transaction', async () => {
    need(S.confirmed, 'a first step');
    const b = await stuck('1500');
    const x = await queuedTransfer('2000');
    const rx = await sdk('speedUpTransfer')({ walletId: S.wallet.id, transferId: x.id });
    assertReplacement('speedUpTransfer', rx, 'SpeedUpTransaction', x);
    assert.equal((await getXfr(x.id)).replacementId, rx.id, 'the transfer names its replacement');
    const cb = await sdk('cancelTransaction')({ walletId: S.wallet.id, transactionId: b.id });
    assertReplacement('cancelTransaction', cb, 'CancelTransaction', b);
    const bFailed = await until('cancelled transaction Failed', () => getTx(b.id), status('Failed'));
    assert.match(bFailed.reason ?? '', /cancel/i, `reason: ${clip(JSON.stringify(bFailed))}`);
    await until('cancel Confirmed', () => getTx(cb.id), status('Confirmed'));
    const xDone = await until('sped-up transfer Confirmed', () => getXfr(x.id), status('Confirmed'));
    assert.equal(xDone.txHash, (await getTx(rx.id)).txHash, 'the transfer reports the speed-up hash');
  });

  step('cancelTransfer: the transfer fails as cancelled, the next one confirms', async () => {
    need(S.confirmed, 'a first step');
    const c = await stuck('3000');
    const y = await queuedTransfer('4000');
    const cy = await sdk('cancelTransfer')({ walletId: S.wallet.id, transferId: y.id });
    assertReplacement('cancelTransfer', cy, 'CancelTransaction', y);
    await sdk('speedUpTransaction')({ walletId: S.wallet.id, transactionId: c.id });
    await until('stuck one sped up', () => getTx(c.id), status('Confirmed'));
    const yFailed = await until('cancelled transfer Failed', () => getXfr(y.id), status('Failed'));
    assert.match(yFailed.reason ?? '', /cancel/i, `reason: ${clip(JSON.stringify(yFailed))}`);
    const z = await sdk('transferAsset')({ walletId: S.wallet.id, body: { kind: 'Native', to: TO, amount: '5000' } });
    await until('a later transfer Confirmed', () => getXfr(z.id), status('Confirmed'));
  });

  step('refusals: a mined transaction, an unknown transfer', async () => {
    const a = need(S.confirmed, 'confirmed transaction');
    await expectDfnsError(sdk('speedUpTransaction')({ walletId: S.wallet.id, transactionId: a.id }), 400, 'speed-up of a Confirmed transaction');
    await expectDfnsError(sdk('cancelTransfer')({ walletId: S.wallet.id, transferId: 'xfr-00000-00000-0000000000000000' }), 404, 'cancel of an unknown transfer');
  });
});
