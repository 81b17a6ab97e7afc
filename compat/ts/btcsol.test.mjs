// Compatibility test: the official Dfns TypeScript SDK against a real countersign server, for Bitcoin and Solana
// wallets. The bootstrap admin creates BitcoinTestnet3 and SolanaDevnet wallets and signs through the SDK what the
// official chain adapters send (packages/lib-bitcoinjs: kind Psbt with "0x"+hex and kind Hash; packages/lib-solana:
// kind Message over a transaction's message bytes; the docs' kind Transaction).
//
// Nothing is taken on trust: addresses are rebuilt here (bech32 per BIP-173 over HASH160 of the key, base58 of the
// Ed25519 key), the PSBT is built byte by byte per BIP-174, its partial signature is read back from signedData and
// verified over the BIP-143 digest computed here, and Ed25519 signatures are verified with node:crypto.

import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { SDK_VERSION, admin, bytesToHex, expectDfnsError, hexToBytes, need, secpPoint, secpVerify, startServer, step, stopServer } from './helpers.mjs';

const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
const hash256 = (b) => sha256(sha256(b));
const hash160 = (b) => crypto.createHash('ripemd160').update(sha256(b)).digest();
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
const varint = (n) => { assert.ok(n < 0xfd, 'only small lengths here'); return Buffer.from([n]); };

// BIP-173 bech32 for a segwit v0 program.
const BECH32 = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
function polymod(values) {
  const G = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= G[i];
  }
  return chk >>> 0;
}
function segwitV0Address(hrp, program) {
  const data = [0];
  let acc = 0, bits = 0;
  for (const byte of program) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) { bits -= 5; data.push((acc >>> bits) & 31); }
  }
  if (bits > 0) data.push((acc << (5 - bits)) & 31);
  const expand = [...hrp].map((c) => c.charCodeAt(0) >> 5).concat([0], [...hrp].map((c) => c.charCodeAt(0) & 31));
  const mod = polymod(expand.concat(data, [0, 0, 0, 0, 0, 0])) ^ 1;
  const checksum = [0, 1, 2, 3, 4, 5].map((i) => (mod >>> (5 * (5 - i))) & 31);
  return `${hrp}1${data.concat(checksum).map((d) => BECH32[d]).join('')}`;
}
const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
function base58(buf) {
  let n = BigInt(`0x${buf.toString('hex') || '0'}`);
  let s = '';
  while (n > 0n) { s = B58[Number(n % 58n)] + s; n /= 58n; }
  for (const b of buf) { if (b !== 0) break; s = `1${s}`; }
  return s;
}
const ed25519Key = (pub) => crypto.createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), pub]), format: 'der', type: 'spki' });

// A one-input one-output PSBT spending `amount` from pub's P2WPKH output (witness UTXO given), and the BIP-143
// SIGHASH_ALL digest of that input, computed here.
function p2wpkhPsbt(pub, amount) {
  const script = Buffer.concat([Buffer.from([0x00, 0x14]), hash160(pub)]);
  const prevTxid = crypto.randomBytes(32);
  const outpoint = Buffer.concat([prevTxid, u32(1)]);
  const payTo = Buffer.concat([Buffer.from([0x00, 0x14]), crypto.randomBytes(20)]);
  const output = Buffer.concat([u64(amount - 500), varint(payTo.length), payTo]);
  const tx = Buffer.concat([u32(2), varint(1), outpoint, varint(0), u32(0xffffffff), varint(1), output, u32(0)]);
  const utxo = Buffer.concat([u64(amount), varint(script.length), script]);
  const psbt = Buffer.concat([
    Buffer.from('70736274ff', 'hex'),
    Buffer.from([0x01, 0x00]), varint(tx.length), tx, Buffer.from([0x00]), // global: unsigned tx
    Buffer.from([0x01, 0x01]), varint(utxo.length), utxo, Buffer.from([0x00]), // input 0: witness UTXO
    Buffer.from([0x00]), // output 0
  ]);
  const scriptCode = Buffer.concat([Buffer.from('1976a914', 'hex'), hash160(pub), Buffer.from('88ac', 'hex')]);
  const preimage = Buffer.concat([
    u32(2), hash256(outpoint), hash256(u32(0xffffffff)), outpoint, scriptCode, u64(amount), u32(0xffffffff),
    hash256(output), u32(0), u32(1),
  ]);
  return { psbt, digest: hash256(preimage) };
}
// Reads DER (r, s) as BigInts.
function parseDer(der) {
  assert.equal(der[0], 0x30, 'DER sequence');
  assert.equal(der[1], der.length - 2, 'DER length');
  const rl = der[3];
  const r = BigInt(`0x${der.subarray(4, 4 + rl).toString('hex')}`);
  const sl = der[5 + rl];
  const s = BigInt(`0x${der.subarray(6 + rl, 6 + rl + sl).toString('hex')}`);
  return [r, s];
}

// An unsigned legacy Solana transaction: signers first (the first pays), a recipient, the System Program.
function solanaTx(...signers) {
  const keys = [...signers, Buffer.alloc(32, 0x42), Buffer.alloc(32)];
  const msg = Buffer.concat([
    Buffer.from([signers.length, 0, 1, keys.length]), ...keys, Buffer.alloc(32, 0xbb),
    Buffer.from([1, keys.length - 1, 2, 0, keys.length - 2, 12, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
  ]);
  return { tx: Buffer.concat([Buffer.from([signers.length]), Buffer.alloc(64 * signers.length), msg]), msg };
}

describe(`countersign Bitcoin and Solana wallets with the official @dfns/sdk ${SDK_VERSION}`, () => {
  before(startServer, { timeout: 600_000 });
  after(stopServer, { timeout: 30_000 });
  const W = {};

  step('local tools pass their vectors (BIP-173 address, base58)', async () => {
    const g = hexToBytes('0x0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798');
    assert.equal(segwitV0Address('bc', hash160(g)), 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4');
    assert.equal(segwitV0Address('tb', hash160(g)), 'tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx');
    assert.equal(base58(Buffer.alloc(32)), '11111111111111111111111111111111');
  });

  step('createWallet BitcoinTestnet3 -> ECDSA/secp256k1, tb1q P2WPKH address of the key; assets empty', async () => {
    const w = await admin.client.wallets.createWallet({ body: { network: 'BitcoinTestnet3' } });
    assert.equal(w.network, 'BitcoinTestnet3');
    assert.equal(w.signingKey?.scheme, 'ECDSA');
    assert.equal(w.signingKey?.curve, 'secp256k1');
    const pub = hexToBytes(w.signingKey.publicKey);
    assert.equal(w.address, segwitV0Address('tb', hash160(pub)));
    const a = await admin.client.wallets.getWalletAssets({ walletId: w.id });
    assert.deepEqual(a.assets, [], 'no RPC backend: no assets, never an invented balance');
    W.btc = w;
  });

  step('generateSignature Psbt (as lib-bitcoinjs sends it) -> signedData PSBT whose partial signature verifies (BIP-143)', async () => {
    const w = need(W.btc, 'Bitcoin wallet');
    const pub = hexToBytes(w.signingKey.publicKey);
    const { psbt, digest } = p2wpkhPsbt(pub, 100_000);
    const sr = await admin.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Psbt', psbt: bytesToHex(psbt) } });
    assert.equal(sr.status, 'Signed');
    assert.ok(Array.isArray(sr.signatures) && sr.signatures.length === 1, `signatures must list the one signed input: ${JSON.stringify(sr)}`);
    const signed = hexToBytes(sr.signedData);
    const key = Buffer.concat([Buffer.from([0x22, 0x02]), pub]);
    const at = signed.indexOf(key);
    assert.ok(at > 0, 'signedData must carry a partial signature keyed by the wallet public key');
    const value = signed.subarray(at + key.length + 1, at + key.length + 1 + signed[at + key.length]);
    assert.equal(value[value.length - 1], 0x01, 'SIGHASH_ALL byte');
    const der = value.subarray(0, value.length - 1);
    assert.equal(bytesToHex(der), sr.signatures[0].encoded, 'signatures[0].encoded is the DER signature');
    const [r, s] = parseDer(der);
    assert.ok(secpVerify(digest, r, s, secpPoint(pub)), 'the partial signature must verify over the BIP-143 digest');
  });

  step('generateSignature Hash (as lib-bitcoinjs sign() does) -> r, s verify', async () => {
    const w = need(W.btc, 'Bitcoin wallet');
    const h = crypto.randomBytes(32);
    const sr = await admin.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Hash', hash: bytesToHex(h) } });
    assert.ok(secpVerify(h, BigInt(sr.signature.r), BigInt(sr.signature.s), secpPoint(hexToBytes(w.signingKey.publicKey))));
  });

  step('a PSBT without an input of the wallet, and a Bitcoin transfer, are refused with 400', async () => {
    const w = need(W.btc, 'Bitcoin wallet');
    const { psbt } = p2wpkhPsbt(Buffer.concat([Buffer.from([2]), crypto.randomBytes(32)]), 5_000);
    await expectDfnsError(admin.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Psbt', psbt: bytesToHex(psbt) } }), 400, 'foreign PSBT');
    await expectDfnsError(
      admin.client.wallets.transferAsset({ walletId: w.id, body: { kind: 'Native', to: 'tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', amount: '1000' } }),
      400, 'Bitcoin transfer without RPC');
  });

  step('createWallet SolanaDevnet -> EdDSA/ed25519, base58 address of the key', async () => {
    const w = await admin.client.wallets.createWallet({ body: { network: 'SolanaDevnet' } });
    assert.equal(w.signingKey?.scheme, 'EdDSA');
    assert.equal(w.signingKey?.curve, 'ed25519');
    assert.equal(w.address, base58(hexToBytes(w.signingKey.publicKey)));
    W.sol = w;
  });

  step('generateSignature Message over a transaction message (as lib-solana does) -> r ‖ s verifies', async () => {
    const w = need(W.sol, 'Solana wallet');
    const pub = hexToBytes(w.signingKey.publicKey);
    const { msg } = solanaTx(pub);
    const sr = await admin.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Message', message: bytesToHex(msg) } });
    const sig = Buffer.concat([hexToBytes(sr.signature.r), hexToBytes(sr.signature.s)]);
    assert.ok(crypto.verify(null, msg, ed25519Key(pub), sig), 'Ed25519 signature over the message');
  });

  step('generateSignature Transaction -> signedData is the transaction with the wallet slot signed', async () => {
    const w = need(W.sol, 'Solana wallet');
    const pub = hexToBytes(w.signingKey.publicKey);
    const { tx, msg } = solanaTx(crypto.randomBytes(32), pub);
    const sr = await admin.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Transaction', transaction: bytesToHex(tx) } });
    const signed = hexToBytes(sr.signedData);
    assert.equal(signed.length, tx.length);
    assert.ok(signed.subarray(1, 65).equals(Buffer.alloc(64)), 'the fee payer slot is left alone');
    assert.ok(signed.subarray(129).equals(msg), 'the message is unchanged');
    assert.ok(crypto.verify(null, msg, ed25519Key(pub), signed.subarray(65, 129)), 'the wallet slot holds its signature');
    assert.equal(bytesToHex(signed.subarray(65, 129)), sr.signature.encoded);
    const { tx: other } = solanaTx(crypto.randomBytes(32));
    await expectDfnsError(admin.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Transaction', transaction: bytesToHex(other) } }), 400, 'not a signer');
  });
});
