// Compatibility test: an internal transfer (native value a contract forwards inside its call) read with the official
// Dfns TypeScript SDK's wallets.getWalletHistory. Wallet A deploys a hand-assembled forwarder (it sends CALLVALUE to
// the address in calldata word 0) with broadcastTransaction kind Evm, then sends value through it to wallet B: B's
// history holds one NativeTransfer In from the contract, in the GetWalletHistoryResponse shape, and A's its top-level
// Out once (README "Wallet history").

import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';

import { SDK_VERSION, Precondition, admin, clip, isStr, keccak256, need, raw, rlpEncode, hexToBytes, sleep, startServer, step, stopServer, toChecksumAddress, uniq } from './helpers.mjs';

const NETWORK = 'EthereumSepolia';
// PUSH1 32 CALLDATASIZE SUB PUSH1 32 PUSH1 0 CALLDATACOPY; PUSH1 0 PUSH1 0 PUSH1 32 CALLDATASIZE SUB PUSH1 0 CALLVALUE
// PUSH1 0 CALLDATALOAD GAS CALL POP STOP (internal/e2e/history_internal_test.go), behind an init code returning it.
const FORWARDER = '60203603602060003760006000602036036000346000355af15000';
const INIT = `0x60${(FORWARDER.length / 2).toString(16).padStart(2, '0')}80600b6000396000f3${FORWARDER}`;
const VALUE = '123456789';

function sdk(method) {
  const g = admin.client.wallets;
  if (typeof g?.[method] !== 'function') throw new Precondition(`skipped: @dfns/sdk ${SDK_VERSION} has no wallets.${method}`);
  return g[method].bind(g);
}

describe(`countersign internal transfers in the wallet history with the official @dfns/sdk ${SDK_VERSION}`, () => {
  before(startServer, { timeout: 600_000 });
  after(stopServer, { timeout: 30_000 });

  const S = {};
  async function until(what, read, done, ms = 90_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await read();
      if (done(v)) return v;
      assert.ok(Date.now() < deadline, `${what}: not reached within ${ms / 1000} s; last: ${clip(JSON.stringify(v))}`);
      await sleep(200);
    }
  }
  async function broadcast(body) {
    const tx = await sdk('broadcastTransaction')({ walletId: S.a.id, body });
    const done = await until(`${tx.id} Confirmed`, () => sdk('getTransaction')({ walletId: S.a.id, transactionId: tx.id }), (r) => ['Confirmed', 'Failed'].includes(r.status));
    assert.equal(done.status, 'Confirmed', `transaction ${clip(JSON.stringify(done))}`);
    return done;
  }

  step('two wallets, A funded', async () => {
    S.a = await sdk('createWallet')({ body: { network: NETWORK, name: `compat-itx-a-${uniq()}` } });
    S.b = await sdk('createWallet')({ body: { network: NETWORK, name: `compat-itx-b-${uniq()}` } });
    const res = await raw('POST', '/dev/faucet', { token: admin.token, body: JSON.stringify({ network: NETWORK, address: S.a.address, amount: '1000000000000000000' }) });
    assert.equal(res.status, 200, `${res.what} -> ${res.status} ${clip(res.text)}`);
  });

  step('A deploys the forwarder and sends value through it to B', async () => {
    need(S.a, 'wallets');
    await broadcast({ kind: 'Evm', data: INIT });
    // A's first transaction (nonce 0) created it: address = keccak256(rlp([sender, 0]))[12:].
    S.forwarder = toChecksumAddress(keccak256(rlpEncode([hexToBytes(S.a.address), 0])).subarray(12).toString('hex'));
    const word = S.b.address.slice(2).toLowerCase().padStart(64, '0');
    S.sent = await broadcast({ kind: 'Evm', to: S.forwarder, value: VALUE, data: `0x${word}` });
  });

  step('getWalletHistory(B): one NativeTransfer In from the contract; getWalletHistory(A): the Out once', async () => {
    const sent = need(S.sent, 'forwarded transaction');
    const res = await until('B history', () => sdk('getWalletHistory')({ walletId: S.b.id }), (r) => (r?.items?.length ?? 0) >= 1);
    const j = clip(JSON.stringify(res), 1500);
    assert.equal(res.walletId, S.b.id, `walletId: ${j}`);
    assert.equal(res.network, NETWORK, `network: ${j}`);
    assert.equal(res.items.length, 1, `one item: ${j}`);
    const it = res.items[0];
    assert.equal(it.kind, 'NativeTransfer', j);
    assert.equal(it.direction, 'In', j);
    assert.equal(it.txHash, sent.txHash, j);
    assert.equal(it.value, VALUE, j);
    assert.equal(it.from.toLowerCase(), S.forwarder.toLowerCase(), j);
    assert.equal(it.to.toLowerCase(), S.b.address.toLowerCase(), j);
    assert.equal(typeof it.blockNumber, 'number', j);
    assert.ok(isStr(it.index) && isStr(it.timestamp) && isStr(it.symbol) && typeof it.decimals === 'number', j);
    assert.equal(it.fee, undefined, `an incoming item has no fee: ${j}`);
    assert.equal(it.metadata?.asset?.decimals, 18, j);

    const a = await until('A history', () => sdk('getWalletHistory')({ walletId: S.a.id }), (r) => (r?.items?.length ?? 0) >= 2);
    const outs = a.items.filter((x) => x.txHash === sent.txHash);
    assert.equal(outs.length, 1, `A's transaction listed once: ${clip(JSON.stringify(a), 1500)}`);
    assert.equal(outs[0].direction, 'Out');
    assert.equal(outs[0].value, VALUE);
    assert.equal(outs[0].fee, sent.fee);
  });
});
