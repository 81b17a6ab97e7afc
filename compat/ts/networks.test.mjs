// Compatibility test: the official Dfns TypeScript SDK against a real countersign server, for the Networks API
// (fee estimates and read-only contract calls on the embedded EthereumSepolia dev chain).
//
// @dfns/sdk 0.8.21 has networks.getFees (GET /networks/fees, simpleFetch: no user action) but no readContract; the
// SDK versions that have readContract (0.5.x and the newest generated client) send POST /networks/read-contract with
// simpleFetch too, i.e. no user action. So readContract is called through the SDK method when it exists, else
// through the SDK's own simpleFetch exactly as that method does. The shapes checked are the union of what the SDK
// versions declare for GetFeesResponse (Eip1559): string offers, numeric blockNumber, baseFeePerGas (0.8.x, string)
// and estimatedBaseFee (0.5.x, number). Server start-up, environment variables and the wire log: see helpers.mjs.

import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import { SDK_VERSION, admin, clip, expectDfnsError, isStr, need, pathOf, raw, sleep, startServer, step, stopServer, uniq, wire } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { simpleFetch } = require('@dfns/sdk/utils/fetch');

const NETWORK = 'EthereumSepolia';
const TO = '0x000000000000000000000000000000000000dEaD';
const INT = /^(0|[1-9][0-9]*)$/;
const MINTED = 31337n;
const word = (n) => BigInt(n).toString(16).padStart(64, '0');
const addrWord = (a) => a.slice(2).toLowerCase().padStart(64, '0');

function getFees(query) {
  const n = admin.client.networks;
  const f = n.getFees ?? n.estimateFees; // estimateFees is the newest name, getFees its deprecated alias
  return f.call(n, query === undefined ? undefined : { query });
}
function readContract(body) {
  const n = admin.client.networks;
  if (typeof n.readContract === 'function') return n.readContract({ body });
  return simpleFetch('/networks/read-contract', { method: 'POST', body, apiOptions: admin.client.apiOptions }).then((r) => r.json());
}

// GetFeesResponse (kind Eip1559) as the SDK versions declare it, plus the fee rules every offer must keep.
function checkFees(what, f) {
  const j = clip(JSON.stringify(f), 900);
  assert.equal(f?.kind, 'Eip1559', `${what}: kind: ${j}`);
  assert.equal(f.network, NETWORK, `${what}: network: ${j}`);
  assert.ok(Number.isSafeInteger(f.blockNumber) && f.blockNumber > 0, `${what}: blockNumber must be a positive integer number: ${j}`);
  assert.ok(isStr(f.baseFeePerGas) && INT.test(f.baseFeePerGas), `${what}: baseFeePerGas must be an integer string (wei): ${j}`);
  assert.ok(Number.isSafeInteger(f.estimatedBaseFee), `${what}: estimatedBaseFee must be an integer number (wei): ${j}`);
  assert.equal(BigInt(f.estimatedBaseFee), BigInt(f.baseFeePerGas), `${what}: estimatedBaseFee and baseFeePerGas are the same fee: ${j}`);
  const base = BigInt(f.baseFeePerGas);
  let prev;
  for (const p of ['slow', 'standard', 'fast']) {
    const o = f[p];
    for (const k of ['maxPriorityFeePerGas', 'maxFeePerGas']) assert.ok(isStr(o?.[k]) && INT.test(o[k]), `${what}: ${p}.${k} must be an integer string (wei): ${j}`);
    const tip = BigInt(o.maxPriorityFeePerGas);
    const max = BigInt(o.maxFeePerGas);
    assert.ok(tip > 0n && max >= base + tip, `${what}: ${p}: maxFeePerGas ${max} must cover baseFee ${base} + tip ${tip}: ${j}`);
    if (prev) assert.ok(tip >= prev.tip && max >= prev.max, `${what}: ${p} must offer at least what the slower priority offers: ${j}`);
    prev = { tip, max };
  }
}

describe(`countersign Networks API with the official @dfns/sdk ${SDK_VERSION}`, () => {
  before(startServer, { timeout: 600_000 });
  after(stopServer, { timeout: 30_000 });
  const S = {}; // wallet, token

  step('networks.getFees(EthereumSepolia) -> Eip1559 offers: strings, slow <= standard <= fast, each covering base fee + tip; no user action', async () => {
    const f = await getFees({ network: NETWORK });
    checkFees('getFees', f);
    const sent = wire.filter((e) => e.via === 'sdk' && pathOf(e.url).startsWith('/networks/fees')).at(-1);
    assert.equal(pathOf(sent?.url ?? ''), `/networks/fees?network=${NETWORK}`, 'the SDK puts the network in the query');
    assert.equal(sent.method, 'GET');
    assert.ok(!sent.userAction, 'getFees is sent without x-dfns-useraction');
  });

  step('networks.getFees refuses Bitcoin, Solana, an unknown network and a missing one with a 400 DfnsError', async () => {
    await expectDfnsError(getFees({ network: 'Bitcoin' }), 400, 'getFees(Bitcoin): no Bitcoin fee source');
    await expectDfnsError(getFees({ network: 'Solana' }), 400, 'getFees(Solana): no Solana fee source');
    await expectDfnsError(getFees({ network: 'Narnia' }), 400, 'getFees(Narnia)');
    await expectDfnsError(getFees(), 400, 'getFees() without a network');
  });

  step('a wallet funded by the dev faucet: 1 ETH and 31337 TEST', async () => {
    const w = await admin.client.wallets.createWallet({ body: { network: NETWORK, name: `compat-networks-${uniq()}` } });
    assert.match(w?.address ?? '', /^0x[0-9a-fA-F]{40}$/, `createWallet: ${clip(JSON.stringify(w))}`);
    const info = await raw('GET', `/dev/faucet?network=${NETWORK}`, { token: admin.token });
    assert.equal(info.status, 200, `${info.what} -> ${info.status} ${clip(info.text)}`);
    for (const body of [
      { network: NETWORK, address: w.address, amount: '1000000000000000000' },
      { network: NETWORK, address: w.address, amount: MINTED.toString(), contract: info.json.token.contract },
    ]) {
      const res = await raw('POST', '/dev/faucet', { token: admin.token, body: JSON.stringify(body) });
      assert.equal(res.status, 200, `${res.what} ${JSON.stringify(body)} -> ${res.status} ${clip(res.text)}`);
    }
    S.wallet = w;
    S.token = info.json.token;
  });

  step('a Fast transferAsset pays what getFees shows: fee = 21000 x (baseFeePerGas + fast.maxPriorityFeePerGas)', async () => {
    const w = need(S.wallet, 'funded wallet');
    const f = await getFees({ network: NETWORK });
    checkFees('getFees', f);
    let tr = await admin.client.wallets.transferAsset({ walletId: w.id, body: { kind: 'Native', to: TO, amount: '1000', priority: 'Fast' } });
    const deadline = Date.now() + 20_000;
    while (tr.status !== 'Confirmed') {
      assert.ok(!['Failed', 'Rejected'].includes(tr.status), `transfer ${tr.status}: ${clip(JSON.stringify(tr))}`);
      assert.ok(Date.now() < deadline, `not Confirmed within 20 s: ${clip(JSON.stringify(tr))}`);
      await sleep(200);
      tr = await admin.client.wallets.getTransfer({ walletId: w.id, transferId: tr.id });
    }
    const want = 21000n * (BigInt(f.baseFeePerGas) + BigInt(f.fast.maxPriorityFeePerGas));
    assert.equal(tr.fee, want.toString(), `fee of a Native transfer with priority Fast, fees shown at block ${f.blockNumber}: ${clip(JSON.stringify(f))}`);
  });

  step('readContract balanceOf(wallet) on the TEST token = the minted amount; sent without a user action', async () => {
    const w = need(S.wallet, 'funded wallet');
    const res = await readContract({ kind: 'Evm', network: NETWORK, contract: S.token.contract, data: `0x70a08231${addrWord(w.address)}` });
    assert.equal(res?.kind, 'Evm', `readContract kind: ${clip(JSON.stringify(res))}`);
    assert.equal(res.data, `0x${word(MINTED)}`, 'balanceOf result');
    const sent = wire.filter((e) => e.via === 'sdk' && pathOf(e.url) === '/networks/read-contract').at(-1);
    assert.ok(sent && !sent.userAction, 'readContract is sent without x-dfns-useraction (simpleFetch)');
    const dec = await readContract({ kind: 'Evm', network: NETWORK, contract: S.token.contract.toLowerCase(), data: '0x313ce567' });
    assert.equal(dec.data, `0x${word(S.token.decimals)}`, 'decimals() with a lower-case contract address');
  });

  step('readContract refuses bad input and a reverted call with a 400 DfnsError', async () => {
    const w = need(S.wallet, 'funded wallet');
    const ok = { kind: 'Evm', network: NETWORK, contract: S.token.contract, data: `0x70a08231${addrWord(w.address)}` };
    for (const [what, body] of [
      ['kind Solana', { ...ok, kind: 'Solana' }],
      ['network Bitcoin', { ...ok, network: 'Bitcoin' }],
      ['unknown network', { ...ok, network: 'Narnia' }],
      ['short contract', { ...ok, contract: '0x1234' }],
      ['data not hex', { ...ok, data: '0xzz' }],
      ['data without 0x', { ...ok, data: ok.data.slice(2) }],
      // transfer(TO, 1) from eth_call's zero sender: OpenZeppelin reverts with ERC20InvalidSender(address(0)).
      ['reverted call', { ...ok, data: `0xa9059cbb${addrWord(TO)}${word(1)}` }],
    ])
      await expectDfnsError(readContract(body), 400, `readContract(${what})`);
  });
});
