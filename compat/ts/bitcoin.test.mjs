// Compatibility test: the official Dfns TypeScript SDK against a real countersign server for what Bitcoin wallets
// gained beyond btcsol.test.mjs: BitcoinTestnet4 wallets, BIP-322 message signatures (kind Bip322, message as hex as
// in Dfns' own example, format Simple or Full) and the Psbt broadcast refusal of a network without a node.
//
// Nothing is taken on trust: BIP-322's to_spend and to_sign are built here from the BIP's text (checked against its
// test vector txids), the BIP-143 digest of to_sign is computed here, and the signature inside the returned proof
// (base64: the witness stack for Simple, the signed to_sign for Full) must verify over it with the wallet's key.

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

// BIP-322: the tagged message hash and the two virtual transactions for output script `script`.
function bip322(message, script) {
  const tag = sha256(Buffer.from('BIP0322-signed-message'));
  const msgHash = sha256(Buffer.concat([tag, tag, message]));
  const scriptSig = Buffer.concat([Buffer.from([0x00, 0x20]), msgHash]);
  const toSpend = Buffer.concat([
    u32(0), varint(1), Buffer.alloc(32), u32(0xffffffff), varint(scriptSig.length), scriptSig, u32(0),
    varint(1), u64(0), varint(script.length), script, u32(0),
  ]);
  const outpoint = Buffer.concat([hash256(toSpend), u32(0)]);
  const output = Buffer.concat([u64(0), varint(1), Buffer.from([0x6a])]);
  const txIn = Buffer.concat([outpoint, varint(0), u32(0)]);
  const toSign = Buffer.concat([u32(0), varint(1), txIn, varint(1), output, u32(0)]); // without witness
  const scriptCode = Buffer.concat([Buffer.from('1976a914', 'hex'), script.subarray(2), Buffer.from('88ac', 'hex')]);
  const digest = hash256(Buffer.concat([
    u32(0), hash256(outpoint), hash256(u32(0)), outpoint, scriptCode, u64(0), u32(0), hash256(output), u32(0), u32(1),
  ]));
  // The signed to_sign (segwit serialization) is: version, marker and flag, the input and output, the witness, lock time.
  const fullPrefix = Buffer.concat([u32(0), Buffer.from([0x00, 0x01]), varint(1), txIn, varint(1), output]);
  return { msgHash, toSignTxid: Buffer.from(hash256(toSign)).reverse().toString('hex'), digest, fullPrefix };
}

// Reads a witness stack (count, then length-prefixed items) at the start of buf; returns the items and the rest.
function readWitness(buf) {
  const items = [];
  let at = 1;
  for (let i = 0; i < buf[0]; i++) {
    const len = buf[at];
    items.push(buf.subarray(at + 1, at + 1 + len));
    at += 1 + len;
  }
  return { items, rest: buf.subarray(at) };
}

function parseDer(der) {
  assert.equal(der[0], 0x30, 'DER sequence');
  const rl = der[3];
  const r = BigInt(`0x${der.subarray(4, 4 + rl).toString('hex')}`);
  const sl = der[5 + rl];
  return [r, BigInt(`0x${der.subarray(6 + rl, 6 + rl + sl).toString('hex')}`)];
}

// Checks a BIP-322 proof of `message` by the P2WPKH key `pub`, returns the DER signature inside.
function verifyProof(pub, message, format, proofB64) {
  const script = Buffer.concat([Buffer.from([0x00, 0x14]), hash160(pub)]);
  const { digest, fullPrefix } = bip322(message, script);
  let proof = Buffer.from(proofB64, 'base64');
  assert.equal(proof.toString('base64'), proofB64, 'signedData is base64');
  if (format === 'Full') {
    assert.ok(proof.subarray(0, fullPrefix.length).equals(fullPrefix), 'a Full proof is the BIP-322 to_sign of this message');
    proof = proof.subarray(fullPrefix.length);
  }
  const { items, rest } = readWitness(proof);
  assert.deepEqual(rest, format === 'Full' ? u32(0) : Buffer.alloc(0), 'nothing but the lock time follows the witness');
  assert.equal(items.length, 2);
  assert.ok(items[1].equals(pub), 'the witness names the wallet key');
  const sig = items[0];
  assert.equal(sig[sig.length - 1], 0x01, 'SIGHASH_ALL, as BIP-322 requires');
  const der = sig.subarray(0, sig.length - 1);
  const [r, s] = parseDer(der);
  assert.ok(secpVerify(digest, r, s, secpPoint(pub)), 'the signature must verify over the BIP-143 digest of to_sign');
  return der;
}

describe(`countersign Bitcoin BIP-322 and Testnet4 with the official @dfns/sdk ${SDK_VERSION}`, () => {
  before(startServer, { timeout: 600_000 });
  after(stopServer, { timeout: 30_000 });
  const W = {};

  step('local BIP-322 tools pass the BIP test vectors (message hashes, to_sign txids)', async () => {
    const script = Buffer.from('00142b05d564e6a7a33c087f16e0f730d1440123799d', 'hex'); // bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l
    const empty = bip322(Buffer.alloc(0), script);
    assert.equal(empty.msgHash.toString('hex'), 'c90c269c4f8fcbe6880f72a721ddfbf1914268a794cbb21cfafee13770ae19f1');
    assert.equal(empty.toSignTxid, '1e9654e951a5ba44c8604c4de6c67fd78a27e81dcadcfe1edf638ba3aaebaed6');
    const hello = bip322(Buffer.from('Hello World'), script);
    assert.equal(hello.msgHash.toString('hex'), 'f0eb03b1a75ac6d9847f55c624a99169b5dccba2a31f5b23bea77ba270de0a7a');
    assert.equal(hello.toSignTxid, '88737ae86f2077145f93cc4b153ae9a1cb8d56afa511988c149c5c8c9d93bddf');
  });

  step('createWallet BitcoinTestnet4 -> ECDSA/secp256k1 with a tb1q address', async () => {
    const w = await admin.client.wallets.createWallet({ body: { network: 'BitcoinTestnet4' } });
    assert.equal(w.network, 'BitcoinTestnet4');
    assert.equal(w.signingKey?.scheme, 'ECDSA');
    assert.match(w.address, /^tb1q[02-9ac-hj-np-z]{38}$/);
    W.btc = w;
  });

  for (const format of [undefined, 'Simple', 'Full']) {
    step(`generateSignature Bip322 format ${format ?? '(default)'} -> a base64 proof whose signature verifies`, async () => {
      const w = need(W.btc, 'Bitcoin wallet');
      const pub = hexToBytes(w.signingKey.publicKey);
      const message = Buffer.from(`I love Dfns ${format ?? ''}`);
      const body = { kind: 'Bip322', message: bytesToHex(message), ...(format ? { format } : {}) };
      const sr = await admin.client.wallets.generateSignature({ walletId: w.id, body });
      assert.equal(sr.status, 'Signed');
      const der = verifyProof(pub, message, format, sr.signedData);
      assert.equal(bytesToHex(der), sr.signature.encoded, 'signature.encoded is the DER signature of the proof');
    });
  }

  step('generateSignature Bip322 through the key (keys.generateSignature with network) -> verifies', async () => {
    const w = need(W.btc, 'Bitcoin wallet');
    const message = Buffer.from('through the key');
    const sr = await admin.client.keys.generateSignature({ keyId: w.signingKey.id, body: { kind: 'Bip322', message: bytesToHex(message), network: 'BitcoinTestnet4' } });
    verifyProof(hexToBytes(w.signingKey.publicKey), message, undefined, sr.signedData);
  });

  step('Bip322 with a text (non-hex) message or an unknown format, and a Psbt broadcast without a node, are refused with 400', async () => {
    const w = need(W.btc, 'Bitcoin wallet');
    await expectDfnsError(admin.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Bip322', message: 'Hello World' } }), 400, 'text message');
    await expectDfnsError(admin.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Bip322', message: '0x01', format: 'Legacy' } }), 400, 'unknown format');
    await expectDfnsError(admin.client.wallets.broadcastTransaction({ walletId: w.id, body: { kind: 'Psbt', psbt: '0x70736274ff' } }), 400, 'Psbt broadcast without --bitcoin-rpc');
  });
});
