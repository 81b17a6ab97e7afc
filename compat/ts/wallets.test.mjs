// Compatibility test: the official Dfns TypeScript SDK (@dfns/sdk 0.8.21 + @dfns/sdk-keysigner) against a real
// countersign server, for the Keys API and EVM wallets. The bootstrap admin (from <data-dir>/bootstrap.env) creates
// keys (ECDSA/secp256k1, EdDSA/ed25519) and EthereumSepolia wallets, lists, renames, tags and untags them, and makes
// signatures of every EVM kind the server offers (Hash, Message, Eip712, Transaction).
//
// Signatures are not taken on trust: secp256k1 ones are verified and their public key recovered with the small
// BigInt implementation in helpers.mjs (keccak-256, secp256k1, RLP, EIP-55/191/712), which checks itself against
// fixed vectors and node:crypto first; Ed25519 ones are verified with node:crypto. The assertions follow what the SDK
// sends and what its type declarations promise (node_modules/@dfns/sdk/generated/{keys,wallets}/types.d.ts), not the
// server's implementation. Server start-up, environment variables and the wire log: see helpers.mjs.

import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import {
  DfnsError,
  SDK_VERSION,
  ISO,
  Precondition,
  SECP_N,
  addressOf,
  admin,
  bytesToHex,
  clip,
  compressPoint,
  eip191Digest,
  eip712Digest,
  expectDfnsError,
  hexToBytes,
  isBool,
  isStr,
  keccak256,
  need,
  pathOf,
  raw,
  rlpDecode,
  rlpEncode,
  secpPoint,
  secpRecover,
  secpVerify,
  selfTestEvmTools,
  shapeIssue,
  shapeIssueSummary,
  sleep,
  startServer,
  step,
  stopServer,
  toChecksumAddress,
  uniq,
  wire,
} from './helpers.mjs';

const NETWORK = 'EthereumSepolia';
const CHAIN_ID = 11155111n;
const GWEI = 1_000_000_000n;
const TO = '0x000000000000000000000000000000000000dEaD';

// ---------------------------------------------------------------------------------------------------------------
// SDK methods: each call goes through sdk(), which skips the step (with the reason) if @dfns/sdk lacks the method.
// ---------------------------------------------------------------------------------------------------------------
const USED_METHODS = {
  keys: ['createKey', 'listKeys', 'getKey', 'updateKey', 'deleteKey', 'generateSignature', 'listSignatures', 'getSignature'],
  wallets: ['createWallet', 'listWallets', 'getWallet', 'updateWallet', 'tagWallet', 'untagWallet', 'generateSignature', 'listSignatures', 'getSignature', 'transferAsset', 'getTransfer', 'listTransfers', 'getWalletAssets', 'broadcastTransaction', 'getTransaction', 'listTransactions', 'getWalletHistory'],
};
function sdk(group, method) {
  const g = admin.client[group];
  if (typeof g?.[method] !== 'function') throw new Precondition(`skipped: @dfns/sdk ${SDK_VERSION} has no ${group}.${method}`);
  return g[method].bind(g);
}

// ---------------------------------------------------------------------------------------------------------------
// Shapes, as declared by @dfns/sdk 0.8.21. Problems are collected (shapeIssue) and asserted by the last step.
// ---------------------------------------------------------------------------------------------------------------
const SCHEMES = ['DH', 'ECDSA', 'EdDSA', 'Schnorr'];
const CURVES = ['ed25519', 'secp256k1', 'stark'];
const SIG_STATUSES = ['Pending', 'Executing', 'Signed', 'Confirmed', 'Failed', 'Rejected'];
const HEX = /^[0-9a-f]+$/i;
const HEX32 = /^0x[0-9a-f]{64}$/;

function checkDate(where, field, v, { optional } = {}) {
  if (v === undefined && optional) return;
  if (!isStr(v) || !ISO.test(v)) shapeIssue(where, `${field} must be an ISO-8601 string, got ${JSON.stringify(v)}`);
}
function checkOptStr(where, obj, fields) {
  for (const f of fields) if (obj[f] !== undefined && !isStr(obj[f])) shapeIssue(where, `${f}, if present, must be a string, got ${JSON.stringify(obj[f])}`);
}
// CreateKeyResponse / ListKeysResponse.items[] / UpdateKeyResponse / DeleteKeyResponse; GetKeyResponse adds wallets and store.
function checkKey(where, k, { get = false } = {}) {
  if (!k || typeof k !== 'object') return shapeIssue(where, `key must be an object, got ${JSON.stringify(k)}`);
  if (!isStr(k.id)) shapeIssue(where, `id must be a string, got ${JSON.stringify(k.id)}`);
  if (!SCHEMES.includes(k.scheme)) shapeIssue(where, `scheme must be one of ${SCHEMES.join('|')}, got ${JSON.stringify(k.scheme)}`);
  if (!CURVES.includes(k.curve)) shapeIssue(where, `curve must be one of ${CURVES.join('|')}, got ${JSON.stringify(k.curve)}`);
  if (!isStr(k.publicKey) || !HEX.test(k.publicKey)) shapeIssue(where, `publicKey must be a hex string, got ${JSON.stringify(k.publicKey)}`);
  if (!['Active', 'Archived'].includes(k.status)) shapeIssue(where, `status must be Active|Archived, got ${JSON.stringify(k.status)}`);
  if (!isBool(k.custodial)) shapeIssue(where, `custodial must be a boolean, got ${JSON.stringify(k.custodial)}`);
  checkDate(where, 'dateCreated', k.dateCreated);
  checkDate(where, 'dateDeleted', k.dateDeleted, { optional: true });
  checkDate(where, 'dateExported', k.dateExported, { optional: true });
  checkOptStr(where, k, ['name']);
  for (const f of ['masterKey', 'imported', 'exported'])
    if (k[f] !== undefined && !isBool(k[f])) shapeIssue(where, `${f}, if present, must be a boolean`);
  if (!get) return;
  if (!Array.isArray(k.wallets)) shapeIssue(where, `wallets (GetKeyResponse: wallets associated with this key) must be an array, got ${JSON.stringify(k.wallets)}`);
  else k.wallets.forEach((w, i) => {
    if (!isStr(w?.id) || !isStr(w?.network)) shapeIssue(`${where}.wallets[${i}]`, `must be {id, network}, got ${JSON.stringify(w)}`);
  });
  if (!k.store || typeof k.store !== 'object') shapeIssue(where, `store (GetKeyResponse: {id, kind, keyId}) must be an object, got ${JSON.stringify(k.store)}`);
  else {
    if (!isStr(k.store.id) || !isStr(k.store.keyId)) shapeIssue(where, `store.id and store.keyId must be strings: ${JSON.stringify(k.store)}`);
    if (!['Hsm', 'Mpc', 'OfflineSigner'].includes(k.store.kind)) shapeIssue(where, `store.kind must be Hsm|Mpc|OfflineSigner, got ${JSON.stringify(k.store.kind)}`);
  }
}
// CreateWalletResponse / GetWalletResponse / UpdateWalletResponse / ListWalletsResponse.items[].
function checkWallet(where, w) {
  if (!w || typeof w !== 'object') return shapeIssue(where, `wallet must be an object, got ${JSON.stringify(w)}`);
  if (!isStr(w.id)) shapeIssue(where, `id must be a string, got ${JSON.stringify(w.id)}`);
  if (!isStr(w.network)) shapeIssue(where, `network must be a string, got ${JSON.stringify(w.network)}`);
  const sk = w.signingKey;
  if (!sk || typeof sk !== 'object') shapeIssue(where, `signingKey must be an object, got ${JSON.stringify(sk)}`);
  else {
    for (const f of ['id', 'publicKey']) if (!isStr(sk[f])) shapeIssue(where, `signingKey.${f} must be a string, got ${JSON.stringify(sk[f])}`);
    if (!SCHEMES.includes(sk.scheme)) shapeIssue(where, `signingKey.scheme must be one of ${SCHEMES.join('|')}, got ${JSON.stringify(sk.scheme)}`);
    if (!CURVES.includes(sk.curve)) shapeIssue(where, `signingKey.curve must be one of ${CURVES.join('|')}, got ${JSON.stringify(sk.curve)}`);
    checkOptStr(where, sk, ['delegatedTo']);
  }
  if (!['Active', 'Inactive', 'Archived'].includes(w.status)) shapeIssue(where, `status must be Active|Inactive|Archived, got ${JSON.stringify(w.status)}`);
  checkDate(where, 'dateCreated', w.dateCreated);
  checkDate(where, 'dateDeleted', w.dateDeleted, { optional: true });
  if (!isBool(w.custodial)) shapeIssue(where, `custodial must be a boolean, got ${JSON.stringify(w.custodial)}`);
  if (!Array.isArray(w.tags) || !w.tags.every(isStr)) shapeIssue(where, `tags must be an array of strings, got ${JSON.stringify(w.tags)}`);
  checkOptStr(where, w, ['address', 'name', 'externalId', 'validatorId']);
}
// GenerateSignatureResponse / GetSignatureResponse / ListSignaturesResponse.items[] (keys and wallets).
function checkSignatureRequest(where, sr, { wallet = false, listItem = false } = {}) {
  if (!sr || typeof sr !== 'object') return shapeIssue(where, `signature request must be an object, got ${JSON.stringify(sr)}`);
  for (const f of ['id', 'keyId']) if (!isStr(sr[f])) shapeIssue(where, `${f} must be a string, got ${JSON.stringify(sr[f])}`);
  if (!isStr(sr.requester?.userId)) shapeIssue(where, `requester.userId must be a string, got ${JSON.stringify(sr.requester)}`);
  if (sr.requester?.tokenId !== undefined && !isStr(sr.requester.tokenId)) shapeIssue(where, 'requester.tokenId, if present, must be a string');
  if (!sr.requestBody || typeof sr.requestBody !== 'object' || !isStr(sr.requestBody.kind))
    shapeIssue(where, `requestBody must be the request body (an object with kind), got ${clip(JSON.stringify(sr.requestBody), 120)}`);
  if (!SIG_STATUSES.includes(sr.status)) shapeIssue(where, `status must be one of ${SIG_STATUSES.join('|')}, got ${JSON.stringify(sr.status)}`);
  checkDate(where, 'dateRequested', sr.dateRequested);
  for (const f of ['datePolicyResolved', 'dateSigned', 'dateConfirmed']) checkDate(where, f, sr[f], { optional: true });
  checkOptStr(where, sr, ['reason', 'signedData', 'txHash', 'fee', 'approvalId', 'externalId']);
  const checkSig = (w, s) => {
    if (!isStr(s?.r) || !isStr(s?.s)) shapeIssue(w, `r and s must be strings, got ${JSON.stringify(s)}`);
    if (s?.recid !== undefined && typeof s.recid !== 'number') shapeIssue(w, `recid, if present, must be a number, got ${JSON.stringify(s.recid)}`);
    if (s?.encoded !== undefined && !isStr(s.encoded)) shapeIssue(w, 'encoded, if present, must be a string');
  };
  if (sr.signature !== undefined) checkSig(`${where}.signature`, sr.signature);
  if (sr.signatures !== undefined) {
    if (!Array.isArray(sr.signatures)) shapeIssue(where, 'signatures, if present, must be an array');
    else sr.signatures.forEach((s, i) => checkSig(`${where}.signatures[${i}]`, s));
  }
  if (wallet) {
    // The wallet GenerateSignatureResponse/GetSignatureResponse declare walletId and network as required; the
    // wallet ListSignaturesResponse items do not declare walletId.
    if (!listItem && !isStr(sr.walletId)) shapeIssue(where, `walletId must be a string, got ${JSON.stringify(sr.walletId)}`);
    if (!listItem && !isStr(sr.network)) shapeIssue(where, `network must be a string, got ${JSON.stringify(sr.network)}`);
  }
}
function checkSignatureList(where, list, { keyId, wallet = false }) {
  assert.ok(Array.isArray(list?.items), `${where}: items must be an array: ${clip(JSON.stringify(list))}`);
  list.items.forEach((sr, i) => checkSignatureRequest(`${where}.items[${i}]`, sr, { wallet, listItem: true }));
  // Both ListSignaturesResponse types (keys and wallets) declare keyId: string at the top level.
  if (list.keyId !== keyId) shapeIssue(where, `keyId (top level) must be the ${wallet ? "wallet's underlying" : 'listed'} key id ${keyId}, got ${JSON.stringify(list.keyId)}`);
  if (list.nextPageToken !== undefined && !isStr(list.nextPageToken)) shapeIssue(where, 'nextPageToken, if present, must be a string');
}

// ---------------------------------------------------------------------------------------------------------------
// Signature checks.
// ---------------------------------------------------------------------------------------------------------------
const big = (h) => BigInt(h);
// An EVM (secp256k1) signature object: r, s 0x+64 hex, recid 0/1, encoded = r ‖ s ‖ (27 + recid). It must verify
// over digest, be low-s (EIP-2; OpenZeppelin's ECDSA.recover refuses high s too) and recover, with its recid, to
// the public key (point) P.
function assertEvmSignature(what, sig, digest, P) {
  assert.ok(sig && typeof sig === 'object', `${what}: signature must be an object, got ${JSON.stringify(sig)}`);
  assert.match(sig.r ?? '', HEX32, `${what}: signature.r must be 0x + 64 lower-case hex digits`);
  assert.match(sig.s ?? '', HEX32, `${what}: signature.s must be 0x + 64 lower-case hex digits`);
  assert.ok(sig.recid === 0 || sig.recid === 1, `${what}: signature.recid must be 0 or 1 (the SDK's EVM signers rebuild v from it), got ${JSON.stringify(sig.recid)}`);
  assert.match(sig.encoded ?? '', /^0x[0-9a-f]{130}$/, `${what}: signature.encoded must be 0x + 130 hex digits (r ‖ s ‖ v)`);
  assert.equal(sig.encoded, `${sig.r}${sig.s.slice(2)}${(27 + sig.recid).toString(16)}`, `${what}: encoded must be r ‖ s ‖ (27 + recid)`);
  const [r, s] = [big(sig.r), big(sig.s)];
  assert.ok(s <= SECP_N / 2n, `${what}: s must be in the lower half of the curve order (EIP-2): ${sig.s}`);
  assert.ok(secpVerify(digest, r, s, P), `${what}: the signature does not verify over digest ${bytesToHex(digest)} with the key`);
  const Q = secpRecover(digest, r, s, sig.recid);
  assert.ok(Q && Q[0] === P[0] && Q[1] === P[1], `${what}: recid ${sig.recid} does not recover the signing key`);
}
function assertSigned(what, sr) {
  assert.equal(sr?.status, 'Signed', `${what}: status must be Signed: ${clip(JSON.stringify(sr))}`);
  assert.ok(isStr(sr.id) && sr.id.length > 0, `${what}: id must be a non-empty string`);
}

// An unsigned EIP-1559 transaction, 0x02 ‖ RLP([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gasLimit, to,
// value, data, accessList]) as ethers' unsignedSerialized has it.
const TX_FIELDS = [CHAIN_ID, 0n, 1n * GWEI, 2n * GWEI, 21000n, hexToBytes(TO), 1000n, Buffer.alloc(0), []];
const unsignedTx = () => Buffer.concat([Buffer.from([0x02]), rlpEncode(TX_FIELDS)]);

// ---------------------------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------------------------
describe(`countersign keys and EVM wallets with the official @dfns/sdk ${SDK_VERSION} + @dfns/sdk-keysigner`, () => {
  before(startServer, { timeout: 600_000 });
  after(stopServer, { timeout: 30_000 });

  step(`@dfns/sdk ${SDK_VERSION} has every keys/wallets method this test calls`, async (t) => {
    const missing = [];
    for (const [group, methods] of Object.entries(USED_METHODS))
      for (const m of methods) if (typeof admin.client[group]?.[m] !== 'function') missing.push(`${group}.${m}`);
    // Not a failure of the server: the steps that need a missing method skip themselves with its name.
    if (missing.length) t.diagnostic(`missing in @dfns/sdk ${SDK_VERSION} (their steps are skipped): ${missing.join(', ')}`);
  });

  step('EVM tools in helpers.mjs pass their self-test (keccak-256, RLP, secp256k1, EIP-55, EIP-712 vectors)', async () => {
    selfTestEvmTools();
  });

  const K = {}; // ecdsa, eddsa, archived: key objects; sigs

  describe('Keys API', () => {
    step('createKey ECDSA/secp256k1 -> id, scheme, curve, 33-byte compressed publicKey, Active', async () => {
      const name = `compat-ecdsa-${uniq()}`;
      const k = await sdk('keys', 'createKey')({ body: { scheme: 'ECDSA', curve: 'secp256k1', name } });
      checkKey('createKey(ECDSA)', k);
      assert.ok(isStr(k?.id) && k.id.startsWith('key-'), `id must start "key-": ${JSON.stringify(k?.id)}`);
      assert.equal(k.scheme, 'ECDSA');
      assert.equal(k.curve, 'secp256k1');
      assert.equal(k.name, name, 'name must be echoed');
      assert.equal(k.status, 'Active');
      assert.match(k.publicKey, /^0[23][0-9a-f]{64}$/, 'publicKey must be the 33-byte compressed point as hex (no 0x)');
      secpPoint(hexToBytes(k.publicKey)); // throws if not on the curve
      K.ecdsa = k;
    });

    step('createKey EdDSA/ed25519 -> 32-byte publicKey that node:crypto accepts', async () => {
      const name = `compat-eddsa-${uniq()}`;
      const k = await sdk('keys', 'createKey')({ body: { scheme: 'EdDSA', curve: 'ed25519', name } });
      checkKey('createKey(EdDSA)', k);
      assert.ok(isStr(k?.id) && k.id.startsWith('key-'), `id must start "key-": ${JSON.stringify(k?.id)}`);
      assert.equal(k.scheme, 'EdDSA');
      assert.equal(k.curve, 'ed25519');
      assert.equal(k.name, name);
      assert.equal(k.status, 'Active');
      assert.match(k.publicKey, /^[0-9a-f]{64}$/, 'publicKey must be 32 bytes as hex (no 0x)');
      K.eddsaKeyObject = crypto.createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), hexToBytes(k.publicKey)]), format: 'der', type: 'spki' });
      K.eddsa = k;
    });

    step('listKeys contains both keys', async () => {
      const [a, b] = [need(K.ecdsa, 'ECDSA key'), need(K.eddsa, 'EdDSA key')];
      const list = await sdk('keys', 'listKeys')();
      assert.ok(Array.isArray(list?.items), `items must be an array: ${clip(JSON.stringify(list))}`);
      list.items.forEach((k, i) => checkKey(`listKeys.items[${i}]`, k));
      for (const k of [a, b]) {
        const found = list.items.find((x) => x?.id === k.id);
        assert.ok(found, `${k.id} not in listKeys`);
        assert.equal(found.publicKey, k.publicKey, `listKeys publicKey of ${k.id}`);
      }
    });

    step('listKeys paging: limit 1 gives one item and a nextPageToken that leads to the other key', async () => {
      need(K.ecdsa && K.eddsa, 'both keys');
      const seen = [];
      let token;
      for (let i = 0; i < 50; i++) {
        const page = await sdk('keys', 'listKeys')({ query: { limit: 1, ...(token ? { paginationToken: token } : {}) } });
        assert.ok(Array.isArray(page?.items) && page.items.length <= 1, `limit 1 must give at most one item: ${clip(JSON.stringify(page))}`);
        seen.push(...page.items.map((k) => k.id));
        if (i === 0) assert.ok(isStr(page.nextPageToken) && page.nextPageToken.length > 0, `two keys exist, so page 1 of limit 1 needs a nextPageToken: ${clip(JSON.stringify(page))}`);
        token = page.nextPageToken;
        if (!token) break;
      }
      assert.equal(new Set(seen).size, seen.length, `paging returned an id twice: ${seen.join(', ')}`);
      for (const k of [K.ecdsa, K.eddsa]) assert.ok(seen.includes(k.id), `${k.id} not found by paging through listKeys`);
    });

    step('getKey returns each key as created', async () => {
      for (const k of [need(K.ecdsa, 'ECDSA key'), need(K.eddsa, 'EdDSA key')]) {
        const got = await sdk('keys', 'getKey')({ keyId: k.id });
        checkKey(`getKey(${k.scheme})`, got, { get: true });
        for (const f of ['id', 'scheme', 'curve', 'publicKey', 'name', 'status']) assert.equal(got?.[f], k[f], `getKey ${f}`);
      }
    });

    step('updateKey renames; getKey shows the new name', async () => {
      const k = need(K.eddsa, 'EdDSA key');
      const name = `compat-renamed-${uniq()}`;
      const res = await sdk('keys', 'updateKey')({ keyId: k.id, body: { name } });
      checkKey('updateKey', res);
      assert.equal(res?.id, k.id);
      assert.equal(res?.name, name, 'updateKey response name');
      assert.equal((await sdk('keys', 'getKey')({ keyId: k.id }))?.name, name, 'getKey name after updateKey');
    });

    step('generateSignature kind Hash on the ECDSA key -> Signed; verifies and recovers to the key', async () => {
      const k = need(K.ecdsa, 'ECDSA key');
      const body = { kind: 'Hash', hash: bytesToHex(crypto.randomBytes(32)) };
      const sr = await sdk('keys', 'generateSignature')({ keyId: k.id, body });
      checkSignatureRequest('keys.generateSignature(Hash)', sr);
      assertSigned('keys.generateSignature(Hash)', sr);
      assert.equal(sr.keyId, k.id, 'keyId');
      assert.deepEqual(sr.requestBody, body, 'requestBody must echo the request');
      const P = secpPoint(hexToBytes(k.publicKey));
      assertEvmSignature('Hash', sr.signature, hexToBytes(body.hash), P);
      K.hashSig = sr;
    });

    step('generateSignature kind Message on the EdDSA key -> Signed; Ed25519 signature verifies with node:crypto', async () => {
      const k = need(K.eddsa, 'EdDSA key');
      const msg = Buffer.from(`countersign ed25519 ${uniq()}`, 'utf8');
      const body = { kind: 'Message', message: bytesToHex(msg) };
      const sr = await sdk('keys', 'generateSignature')({ keyId: k.id, body });
      checkSignatureRequest('keys.generateSignature(Message, EdDSA)', sr);
      assertSigned('keys.generateSignature(Message, EdDSA)', sr);
      assert.equal(sr.keyId, k.id, 'keyId');
      assert.deepEqual(sr.requestBody, body, 'requestBody must echo the request');
      const sig = sr.signature;
      assert.match(sig?.r ?? '', HEX32, 'signature.r must be 0x + 64 hex (R, 32 bytes)');
      assert.match(sig?.s ?? '', HEX32, 'signature.s must be 0x + 64 hex (S, 32 bytes)');
      const rs = Buffer.concat([hexToBytes(sig.r), hexToBytes(sig.s)]);
      if (sig.encoded !== undefined) assert.equal(sig.encoded, bytesToHex(rs), 'encoded, if present, must be R ‖ S');
      assert.ok(crypto.verify(null, msg, K.eddsaKeyObject, rs), 'Ed25519 signature R ‖ S does not verify over the message with the key');
      assert.ok(!crypto.verify(null, Buffer.concat([msg, Buffer.from('x')]), K.eddsaKeyObject, rs), 'and must not verify over another message');
      K.edSig = sr;
    });

    step('keys.listSignatures and keys.getSignature return the signature request', async () => {
      const [k, sr] = [need(K.ecdsa, 'ECDSA key'), need(K.hashSig, 'Hash signature')];
      const list = await sdk('keys', 'listSignatures')({ keyId: k.id });
      checkSignatureList('keys.listSignatures', list, { keyId: k.id });
      const item = list.items.find((x) => x?.id === sr.id);
      assert.ok(item, `${sr.id} not in keys.listSignatures(${k.id}): ${clip(JSON.stringify(list))}`);
      assert.deepEqual(item.signature, sr.signature, 'listed signature');
      assert.ok(!list.items.some((x) => x?.id === K.edSig?.id), "another key's signature must not be listed");
      const got = await sdk('keys', 'getSignature')({ keyId: k.id, signatureId: sr.id });
      checkSignatureRequest('keys.getSignature', got);
      for (const f of ['id', 'keyId', 'status', 'dateRequested']) assert.equal(got?.[f], sr[f], `getSignature ${f}`);
      assert.deepEqual(got.signature, sr.signature, 'getSignature signature');
      assert.deepEqual(got.requestBody, sr.requestBody, 'getSignature requestBody');
      if (K.edSig) await expectDfnsError(sdk('keys', 'getSignature')({ keyId: k.id, signatureId: K.edSig.id }), 404, "getSignature of another key's signature id");
    });

    step('deleteKey archives a key; getKey shows Archived; it can no longer sign (4xx DfnsError)', async () => {
      const k = await sdk('keys', 'createKey')({ body: { scheme: 'ECDSA', curve: 'secp256k1', name: `compat-del-${uniq()}` } });
      assert.ok(isStr(k?.id), 'createKey');
      const res = await sdk('keys', 'deleteKey')({ keyId: k.id });
      checkKey('deleteKey', res);
      assert.equal(res?.id, k.id);
      assert.equal(res?.status, 'Archived', 'deleteKey response status');
      const got = await sdk('keys', 'getKey')({ keyId: k.id });
      assert.equal(got?.status, 'Archived', 'getKey status after deleteKey');
      checkDate('getKey(after deleteKey)', 'dateDeleted', got?.dateDeleted);
      let err;
      try {
        await sdk('keys', 'generateSignature')({ keyId: k.id, body: { kind: 'Hash', hash: bytesToHex(crypto.randomBytes(32)) } });
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof DfnsError, `signing with an archived key must fail with a DfnsError, got ${err ? err.message : 'success'}`);
      assert.ok(err.httpStatus >= 400 && err.httpStatus < 500, `signing with an archived key: expected a 4xx, got ${err.httpStatus}`);
    });
  });

  const W = {}; // wallet, other, sigs by kind

  describe('EVM wallets on EthereumSepolia', () => {
    step('createWallet {network, name} -> wa- id, EIP-55 address of signingKey.publicKey, ECDSA/secp256k1, Active, tags []', async () => {
      const name = `compat-wallet-${uniq()}`;
      const w = await sdk('wallets', 'createWallet')({ body: { network: NETWORK, name } });
      checkWallet('createWallet', w);
      assert.ok(isStr(w?.id) && w.id.startsWith('wa-'), `id must start "wa-": ${JSON.stringify(w?.id)}`);
      assert.equal(w.network, NETWORK);
      assert.equal(w.name, name);
      assert.equal(w.status, 'Active');
      assert.deepEqual(w.tags, [], 'a new wallet has no tags');
      assert.match(w.address ?? '', /^0x[0-9a-fA-F]{40}$/, 'address must be 0x + 40 hex digits');
      assert.equal(w.signingKey?.scheme, 'ECDSA');
      assert.equal(w.signingKey?.curve, 'secp256k1');
      assert.ok(isStr(w.signingKey?.id) && w.signingKey.id.length > 0, 'signingKey.id');
      assert.match(w.signingKey?.publicKey ?? '', /^(0[23][0-9a-f]{64}|04[0-9a-f]{128})$/, 'signingKey.publicKey must be a SEC1 secp256k1 point as hex');
      const P = secpPoint(hexToBytes(w.signingKey.publicKey));
      assert.equal(w.address, toChecksumAddress(w.address), 'address must carry its EIP-55 checksum');
      assert.equal(w.address, addressOf(P), 'address must be keccak256(public key)[12:] of signingKey.publicKey');
      W.wallet = w;
      W.P = P;
    });

    step("the wallet's signingKey is a key of the Keys API (getKey, same publicKey)", async () => {
      const w = need(W.wallet, 'wallet');
      const k = await sdk('keys', 'getKey')({ keyId: w.signingKey.id });
      checkKey('getKey(wallet signing key)', k, { get: true });
      assert.equal(k?.id, w.signingKey.id);
      assert.equal(k?.scheme, 'ECDSA');
      assert.equal(k?.curve, 'secp256k1');
      assert.deepEqual(
        compressPoint(secpPoint(hexToBytes(k.publicKey))),
        compressPoint(W.P),
        `getKey publicKey ${k.publicKey} is not the wallet's ${w.signingKey.publicKey}`,
      );
      if (Array.isArray(k.wallets) && !k.wallets.some((x) => x?.id === w.id))
        shapeIssue('getKey(wallet signing key)', `wallets ${JSON.stringify(k.wallets)} lacks the wallet ${w.id}`);
    });

    step('a second wallet; listWallets contains both', async () => {
      const w = need(W.wallet, 'wallet');
      W.other = await sdk('wallets', 'createWallet')({ body: { network: NETWORK, name: `compat-wallet2-${uniq()}` } });
      checkWallet('createWallet(second)', W.other);
      assert.notEqual(W.other?.id, w.id);
      assert.notEqual(W.other?.address, w.address, 'two new wallets must not share an address');
      const list = await sdk('wallets', 'listWallets')();
      assert.ok(Array.isArray(list?.items), `items must be an array: ${clip(JSON.stringify(list))}`);
      list.items.forEach((x, i) => checkWallet(`listWallets.items[${i}]`, x));
      for (const x of [w, W.other]) {
        const found = list.items.find((y) => y?.id === x.id);
        assert.ok(found, `${x.id} not in listWallets`);
        assert.equal(found.address, x.address, `listWallets address of ${x.id}`);
      }
    });

    step('listWallets paging: limit 1 gives one item and a nextPageToken; following the tokens finds both, once', async () => {
      need(W.wallet && W.other, 'two wallets');
      const seen = [];
      let token;
      for (let i = 0; i < 50; i++) {
        const page = await sdk('wallets', 'listWallets')({ query: { limit: 1, ...(token ? { paginationToken: token } : {}) } });
        assert.ok(Array.isArray(page?.items) && page.items.length <= 1, `limit 1 must give at most one item: ${clip(JSON.stringify(page))}`);
        if (i === 0) {
          assert.equal(page.items.length, 1, 'page 1 of limit 1 must hold one wallet');
          assert.ok(isStr(page.nextPageToken) && page.nextPageToken.length > 0, `two wallets exist, so page 1 of limit 1 needs a nextPageToken: ${clip(JSON.stringify(page))}`);
        }
        seen.push(...page.items.map((x) => x.id));
        token = page.nextPageToken;
        if (!token) break;
      }
      assert.equal(new Set(seen).size, seen.length, `paging returned a wallet twice: ${seen.join(', ')}`);
      for (const x of [W.wallet, W.other]) assert.ok(seen.includes(x.id), `${x.id} not found by paging through listWallets`);
    });

    step('getWallet returns the wallet as created', async () => {
      const w = need(W.wallet, 'wallet');
      const got = await sdk('wallets', 'getWallet')({ walletId: w.id });
      checkWallet('getWallet', got);
      for (const f of ['id', 'network', 'address', 'name', 'status', 'dateCreated']) assert.equal(got?.[f], w[f], `getWallet ${f}`);
      assert.deepEqual(got.signingKey, w.signingKey, 'getWallet signingKey');
    });

    step('updateWallet {name} -> renamed in the response and in getWallet', async () => {
      const w = need(W.wallet, 'wallet');
      const name = `compat-renamed-${uniq()}`;
      const res = await sdk('wallets', 'updateWallet')({ walletId: w.id, body: { name } });
      checkWallet('updateWallet', res);
      assert.equal(res?.id, w.id);
      assert.equal(res?.name, name, 'updateWallet response name');
      assert.equal(res?.address, w.address, 'updateWallet must not change the address');
      assert.equal((await sdk('wallets', 'getWallet')({ walletId: w.id }))?.name, name, 'getWallet name after updateWallet');
    });

    step('tagWallet {tags} (PUT) then untagWallet {tags} (DELETE with a body)', async () => {
      const w = need(W.wallet, 'wallet');
      const [a, b] = [`alpha-${uniq()}`, `beta-${uniq()}`];
      const tagged = await sdk('wallets', 'tagWallet')({ walletId: w.id, body: { tags: [a, b] } });
      assert.deepEqual(tagged, {}, 'TagWalletResponse is {}');
      let got = await sdk('wallets', 'getWallet')({ walletId: w.id });
      assert.deepEqual([...(got?.tags ?? [])].sort(), [a, b].sort(), `tags after tagWallet: ${JSON.stringify(got?.tags)}`);
      const untagged = await sdk('wallets', 'untagWallet')({ walletId: w.id, body: { tags: [a] } });
      assert.deepEqual(untagged, {}, 'UntagWalletResponse is {}');
      const del = wire.filter((e) => e.via === 'sdk' && e.method === 'DELETE' && pathOf(e.url) === `/wallets/${w.id}/tags`).at(-1);
      assert.equal(del?.requestBody, JSON.stringify({ tags: [a] }), 'the SDK sends untagWallet as DELETE with the body');
      got = await sdk('wallets', 'getWallet')({ walletId: w.id });
      assert.deepEqual(got?.tags, [b], `tags after untagWallet: ${JSON.stringify(got?.tags)}`);
      const other = await sdk('wallets', 'getWallet')({ walletId: need(W.other, 'second wallet').id });
      assert.deepEqual(other?.tags, [], 'tagging one wallet must not tag another');
    });

    // One signature per kind; each must be Signed, echo its body, name the wallet, key and network, and recover to
    // the wallet's address over the digest the kind defines.
    const walletSign = async (what, body) => {
      const w = need(W.wallet, 'wallet');
      const sr = await sdk('wallets', 'generateSignature')({ walletId: w.id, body });
      checkSignatureRequest(`wallets.generateSignature(${what})`, sr, { wallet: true });
      assertSigned(`wallets.generateSignature(${what})`, sr);
      assert.equal(sr.walletId, w.id, 'walletId');
      assert.equal(sr.keyId, w.signingKey.id, "keyId must be the wallet's signing key");
      assert.equal(sr.network, NETWORK, 'network');
      assert.deepEqual(sr.requestBody, body, 'requestBody must echo the request');
      (W.sigs ??= []).push(sr);
      return sr;
    };
    const recoversToWallet = (what, sig, digest) => {
      assertEvmSignature(what, sig, digest, W.P);
      assert.equal(addressOf(secpRecover(digest, big(sig.r), big(sig.s), sig.recid)), W.wallet.address, `${what}: recovered address`);
    };

    step('wallets.generateSignature kind Hash -> Signed; recovers to the wallet address', async () => {
      const body = { kind: 'Hash', hash: bytesToHex(crypto.randomBytes(32)) };
      const sr = await walletSign('Hash', body);
      recoversToWallet('Hash', sr.signature, hexToBytes(body.hash));
    });

    step('wallets.generateSignature kind Message (hex) -> Signed; EIP-191 personal_sign digest recovers to the wallet address', async () => {
      const msg = Buffer.from(`Hello from countersign ${uniq()}`, 'utf8');
      const body = { kind: 'Message', message: bytesToHex(msg) };
      const sr = await walletSign('Message', body);
      recoversToWallet('Message', sr.signature, eip191Digest(msg));
    });

    step('wallets.generateSignature kind Eip712 (as ethers sends it) -> Signed; EIP-712 digest recovers to the wallet address', async () => {
      const w = need(W.wallet, 'wallet');
      const typed = {
        types: {
          Person: [
            { name: 'name', type: 'string' },
            { name: 'wallet', type: 'address' },
          ],
          Mail: [
            { name: 'from', type: 'Person' },
            { name: 'to', type: 'Person' },
            { name: 'contents', type: 'string' },
            { name: 'amount', type: 'uint256' },
            { name: 'tags', type: 'bytes32[]' },
          ],
        },
        domain: { name: 'Ether Mail', version: '1', chainId: Number(CHAIN_ID), verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC' },
        message: {
          from: { name: 'Cow', wallet: w.address },
          to: { name: 'Bob', wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' },
          contents: 'Hello, Bob!',
          amount: '1000000000000000000000',
          tags: [bytesToHex(keccak256(Buffer.from('a'))), bytesToHex(keccak256(Buffer.from('b')))],
        },
      };
      const body = { kind: 'Eip712', ...typed };
      const sr = await walletSign('Eip712', body);
      recoversToWallet('Eip712', sr.signature, eip712Digest(typed));
    });

    step('wallets.generateSignature kind Transaction (unsigned EIP-1559 hex) -> Signed; signedData is the signed 0x02 envelope', async () => {
      const unsigned = unsignedTx();
      const body = { kind: 'Transaction', transaction: bytesToHex(unsigned) };
      const sr = await walletSign('Transaction', body);
      const sig = sr.signature;
      recoversToWallet('Transaction', sig, keccak256(unsigned));
      assert.ok(isStr(sr.signedData), `signedData must be a string for kind Transaction (lib-ethersjs6 returns it as the signed tx): ${clip(JSON.stringify(sr))}`);
      assert.ok(sr.signedData.startsWith('0x02'), `signedData must be an EIP-1559 envelope starting 0x02: ${clip(sr.signedData, 80)}`);
      const expected = bytesToHex(Buffer.concat([Buffer.from([0x02]), rlpEncode([...TX_FIELDS, BigInt(sig.recid), big(sig.r), big(sig.s)])]));
      if (sr.signedData.toLowerCase() !== expected) {
        // Say which field differs before failing.
        const items = rlpDecode(hexToBytes(sr.signedData).subarray(1));
        const names = ['chainId', 'nonce', 'maxPriorityFeePerGas', 'maxFeePerGas', 'gasLimit', 'to', 'value', 'data', 'accessList', 'yParity', 'r', 's'];
        const want = rlpDecode(hexToBytes(expected).subarray(1));
        const diffs = names.map((n, i) => (JSON.stringify(items[i]) !== JSON.stringify(want[i]) ? `${n}: got ${JSON.stringify(items[i])}, want ${JSON.stringify(want[i])}` : null)).filter(Boolean);
        assert.fail(`signedData is not 0x02 ‖ RLP([unsigned fields…, yParity=recid, r, s]); ${items.length} items; differences: ${diffs.join('; ') || '(encoding only)'}`);
      }
      if (sr.txHash !== undefined) assert.equal(sr.txHash.toLowerCase(), bytesToHex(keccak256(hexToBytes(sr.signedData))), 'txHash, if present, must be keccak256(signedData)');
    });

    step('externalId: the same request twice -> the same signature request; another body with it -> DfnsError 409', async () => {
      const externalId = `compat-ext-${uniq()}`;
      const body = { kind: 'Hash', hash: bytesToHex(crypto.randomBytes(32)), externalId };
      const first = await walletSign('Hash+externalId', body);
      assert.equal(first.externalId, externalId, 'externalId must be echoed');
      const again = await sdk('wallets', 'generateSignature')({ walletId: W.wallet.id, body: { ...body } });
      assert.equal(again?.id, first.id, 'a retry with the same externalId and body must return the same signature request');
      assert.deepEqual(again.signature, first.signature, 'and the same signature');
      const other = { kind: 'Hash', hash: bytesToHex(crypto.randomBytes(32)), externalId };
      await expectDfnsError(sdk('wallets', 'generateSignature')({ walletId: W.wallet.id, body: other }), 409, 'same externalId with another hash');
    });

    step('wallets.listSignatures lists every signature of the wallet; wallets.getSignature returns each', async () => {
      const w = need(W.wallet, 'wallet');
      const sigs = need(W.sigs?.length && W.sigs, 'wallet signatures');
      const list = await sdk('wallets', 'listSignatures')({ walletId: w.id });
      checkSignatureList('wallets.listSignatures', list, { keyId: w.signingKey.id, wallet: true });
      const ids = list.items.map((x) => x?.id);
      for (const sr of sigs) assert.ok(ids.includes(sr.id), `${sr.id} (${sr.requestBody?.kind}) not in wallets.listSignatures: ${ids.join(', ')}`);
      assert.equal(new Set(ids).size, ids.length, 'no signature request listed twice');
      for (const sr of sigs) {
        const got = await sdk('wallets', 'getSignature')({ walletId: w.id, signatureId: sr.id });
        checkSignatureRequest(`wallets.getSignature(${sr.requestBody?.kind})`, got, { wallet: true });
        for (const f of ['id', 'keyId', 'walletId', 'network', 'status', 'signedData', 'dateRequested']) assert.equal(got?.[f], sr[f], `getSignature ${f} of ${sr.id}`);
        assert.deepEqual(got.signature, sr.signature, `getSignature signature of ${sr.id}`);
        assert.deepEqual(got.requestBody, sr.requestBody, `getSignature requestBody of ${sr.id}`);
      }
      const page = await sdk('wallets', 'listSignatures')({ walletId: w.id, query: { limit: 1 } });
      assert.equal(page?.items?.length, 1, 'limit 1');
      assert.ok(isStr(page.nextPageToken) && page.nextPageToken.length > 0, 'several signatures exist, so limit 1 needs a nextPageToken');
      const otherList = await sdk('wallets', 'listSignatures')({ walletId: need(W.other, 'second wallet').id });
      assert.deepEqual(otherList?.items, [], "the second wallet has made no signatures, so its list is empty");
    });
  });

  // Transfers on the embedded dev chain (README "The embedded dev chain", "Transfers"): a fresh wallet funded by the
  // dev faucet sends native coin and the built-in TEST ERC-20 through wallets.transferAsset; each transfer is followed
  // to Confirmed with wallets.getTransfer, and the balances from wallets.getWalletAssets must show exactly the amounts
  // and fees the transfer requests report.
  const X = {}; // wallet, token {contract, symbol, decimals}, startNative, native, erc20 (bodies and confirmed transfers)
  const XFR_STATUSES = ['Pending', 'Executing', 'Broadcasted', 'Confirmed', 'Failed', 'Rejected'];
  const ONE_ETH = 1_000_000_000_000_000_000n;
  const NATIVE_AMOUNT = 1_000_000_000_000n;
  const INT = /^(0|[1-9][0-9]*)$/;
  const sameAddr = (a, b) => isStr(a) && isStr(b) && a.toLowerCase() === b.toLowerCase();

  // TransferAssetResponse / GetTransferResponse / ListTransfersResponse.items[] as @dfns/sdk declares them.
  function assertTransfer(what, tr, { body, asset }) {
    assert.ok(tr && typeof tr === 'object', `${what}: transfer request must be an object, got ${clip(JSON.stringify(tr))}`);
    const j = clip(JSON.stringify(tr), 900);
    assert.ok(isStr(tr.id) && tr.id.startsWith('xfr-'), `${what}: id must be a string starting "xfr-": ${j}`);
    assert.equal(tr.walletId, X.wallet.id, `${what}: walletId: ${j}`);
    assert.equal(tr.network, NETWORK, `${what}: network: ${j}`);
    assert.ok(isStr(tr.requester?.userId) && tr.requester.userId.length > 0, `${what}: requester.userId must be a non-empty string: ${j}`);
    if (tr.requester.tokenId !== undefined) assert.ok(isStr(tr.requester.tokenId), `${what}: requester.tokenId, if present, must be a string: ${j}`);
    assert.deepEqual(tr.requestBody, body, `${what}: requestBody must echo the request body: ${j}`);
    assert.ok(tr.metadata && typeof tr.metadata === 'object', `${what}: metadata must be an object: ${j}`);
    assert.ok(tr.metadata.asset && typeof tr.metadata.asset === 'object', `${what}: metadata.asset must be an object: ${j}`);
    const a = tr.metadata.asset;
    if (a.symbol !== undefined) assert.ok(isStr(a.symbol), `${what}: metadata.asset.symbol, if present, must be a string: ${j}`);
    if (a.symbol !== undefined && asset.symbol !== undefined) assert.equal(a.symbol, asset.symbol, `${what}: metadata.asset.symbol, if present: ${j}`);
    if (a.decimals !== undefined) assert.equal(a.decimals, asset.decimals, `${what}: metadata.asset.decimals, if present: ${j}`);
    if (a.verified !== undefined) assert.ok(isBool(a.verified), `${what}: metadata.asset.verified, if present, must be a boolean: ${j}`);
    assert.ok(XFR_STATUSES.includes(tr.status), `${what}: status must be one of ${XFR_STATUSES.join('|')}: ${j}`);
    assert.ok(!['Failed', 'Rejected'].includes(tr.status), `${what}: status ${tr.status} (reason ${JSON.stringify(tr.reason)}): ${j}`);
    assert.ok(isStr(tr.dateRequested) && ISO.test(tr.dateRequested), `${what}: dateRequested must be an ISO-8601 string: ${j}`);
    for (const f of ['datePolicyResolved', 'dateBroadcasted', 'dateConfirmed'])
      if (tr[f] !== undefined) assert.ok(isStr(tr[f]) && ISO.test(tr[f]), `${what}: ${f}, if present, must be an ISO-8601 string: ${j}`);
    for (const f of ['reason', 'txHash', 'fee', 'approvalId', 'externalId', 'feeSponsorId', 'replacementId'])
      if (tr[f] !== undefined) assert.ok(isStr(tr[f]), `${what}: ${f}, if present, must be a string: ${j}`);
    if (body.externalId !== undefined) assert.equal(tr.externalId, body.externalId, `${what}: externalId must be echoed: ${j}`);
    if (tr.details !== undefined) assert.ok(tr.details && typeof tr.details === 'object', `${what}: details, if present, must be an object: ${j}`);
    if (tr.status === 'Confirmed') {
      assert.match(tr.txHash ?? '', HEX32, `${what}: a Confirmed transfer's txHash must be 0x + 64 lower-case hex digits: ${j}`);
      assert.ok(isStr(tr.fee) && INT.test(tr.fee) && BigInt(tr.fee) > 0n, `${what}: a Confirmed transfer's fee must be a positive integer string (wei): ${j}`);
    }
  }
  async function assets(what) {
    const res = await sdk('wallets', 'getWalletAssets')({ walletId: X.wallet.id });
    const j = clip(JSON.stringify(res), 900);
    assert.equal(res?.walletId, X.wallet.id, `${what}: walletId: ${j}`);
    assert.equal(res?.network, NETWORK, `${what}: network: ${j}`);
    assert.ok(Array.isArray(res.assets), `${what}: assets must be an array: ${j}`);
    for (const a of res.assets) {
      assert.ok(isStr(a?.kind), `${what}: every asset needs a kind: ${j}`);
      assert.ok(typeof a.decimals === 'number', `${what}: every asset needs decimals (number): ${j}`);
      assert.ok(isStr(a.balance) && INT.test(a.balance), `${what}: every asset needs balance (integer string): ${j}`);
      if (a.kind === 'Erc20') assert.ok(isStr(a.contract), `${what}: an Erc20 asset needs contract: ${j}`);
    }
    const natives = res.assets.filter((a) => a.kind === 'Native');
    assert.equal(natives.length, 1, `${what}: exactly one Native asset: ${j}`);
    assert.equal(natives[0].decimals, 18, `${what}: Native decimals: ${j}`);
    const tokens = res.assets.filter((a) => a.kind === 'Erc20' && sameAddr(a.contract, X.token.contract));
    assert.ok(tokens.length <= 1, `${what}: the TEST token listed more than once: ${j}`);
    if (tokens[0]) assert.equal(tokens[0].decimals, X.token.decimals, `${what}: TEST token decimals: ${j}`);
    return { native: BigInt(natives[0].balance), token: tokens[0] ? BigInt(tokens[0].balance) : 0n, raw: res };
  }
  async function waitConfirmed(what, transferId, opts) {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const tr = await sdk('wallets', 'getTransfer')({ walletId: X.wallet.id, transferId });
      assertTransfer(`${what} getTransfer`, tr, opts);
      assert.equal(tr.id, transferId, `${what}: getTransfer id`);
      if (tr.status === 'Confirmed') return tr;
      assert.ok(Date.now() < deadline, `${what}: not Confirmed within 20 s; last: ${clip(JSON.stringify(tr))}`);
      await sleep(200);
    }
  }

  describe('transfers on the EthereumSepolia dev chain', () => {
    step('a new wallet funded by the dev faucet: 1 ETH and 5000 TEST; getWalletAssets shows both', async () => {
      const w = await sdk('wallets', 'createWallet')({ body: { network: NETWORK, name: `compat-xfr-${uniq()}` } });
      checkWallet('createWallet(transfers)', w);
      assert.ok(isStr(w?.address) && /^0x[0-9a-fA-F]{40}$/.test(w.address), `wallet address: ${clip(JSON.stringify(w))}`);
      const info = await raw('GET', `/dev/faucet?network=${NETWORK}`, { token: admin.token });
      assert.equal(info.status, 200, `${info.what} -> ${info.status} ${clip(info.text)}`);
      assert.equal(info.json?.network, NETWORK, `${info.what}: network: ${clip(info.text)}`);
      const token = info.json?.token;
      assert.match(token?.contract ?? '', /^0x[0-9a-fA-F]{40}$/, `${info.what}: token.contract: ${clip(info.text)}`);
      assert.equal(token.symbol, 'TEST', `${info.what}: token.symbol`);
      assert.equal(token.decimals, 6, `${info.what}: token.decimals`);
      for (const body of [
        { network: NETWORK, address: w.address, amount: ONE_ETH.toString() },
        { network: NETWORK, address: w.address, amount: '5000', contract: token.contract },
      ]) {
        const res = await raw('POST', '/dev/faucet', { token: admin.token, body: JSON.stringify(body) });
        assert.equal(res.status, 200, `${res.what} ${JSON.stringify(body)} -> ${res.status} ${clip(res.text)}`);
        assert.match(res.json?.txHash ?? '', /^0x[0-9a-fA-F]{64}$/, `${res.what}: txHash: ${clip(res.text)}`);
      }
      X.wallet = w;
      X.token = token;
      const bal = await assets('getWalletAssets(after faucet)');
      assert.equal(bal.native, ONE_ETH, `native balance after the faucet: ${clip(JSON.stringify(bal.raw))}`);
      assert.equal(bal.token, 5000n, `TEST balance after the faucet: ${clip(JSON.stringify(bal.raw))}`);
      X.startNative = bal.native;
    });

    step('transferAsset Native and Erc20 -> xfr- requests that echo the body; getTransfer follows each to Confirmed with txHash and fee', async () => {
      need(X.wallet, 'funded wallet');
      X.native = { body: { kind: 'Native', to: TO, amount: NATIVE_AMOUNT.toString(), externalId: `compat-xfr-native-${uniq()}` }, asset: { decimals: 18 } };
      X.erc20 = { body: { kind: 'Erc20', contract: X.token.contract, to: TO, amount: '100', externalId: `compat-xfr-erc20-${uniq()}` }, asset: { symbol: 'TEST', decimals: 6 } };
      for (const [what, x] of [['Native', X.native], ['Erc20', X.erc20]]) {
        const tr = await sdk('wallets', 'transferAsset')({ walletId: X.wallet.id, body: { ...x.body } });
        assertTransfer(`transferAsset(${what})`, tr, x);
        const ua = wire.filter((e) => e.via === 'sdk' && e.method === 'POST' && pathOf(e.url) === `/wallets/${X.wallet.id}/transfers`).at(-1);
        assert.ok(ua?.userAction, 'the SDK sends transferAsset with an x-dfns-useraction header');
        x.created = tr;
      }
      for (const [what, x] of [['Native', X.native], ['Erc20', X.erc20]]) {
        x.confirmed = await waitConfirmed(what, x.created.id, x);
        for (const f of ['id', 'walletId', 'network', 'dateRequested', 'externalId'])
          assert.equal(x.confirmed[f], x.created[f], `${what}: getTransfer ${f} must equal transferAsset's`);
        assert.deepEqual(x.confirmed.requester, x.created.requester, `${what}: requester`);
      }
      assert.notEqual(X.native.confirmed.txHash, X.erc20.confirmed.txHash, 'two transfers, two transactions');
    });

    step('replaying transferAsset with the same externalId and body returns the same transfer', async () => {
      for (const [what, x] of [['Native', X.native], ['Erc20', X.erc20]]) {
        need(x?.confirmed, `confirmed ${what} transfer`);
        const again = await sdk('wallets', 'transferAsset')({ walletId: X.wallet.id, body: { ...x.body } });
        assertTransfer(`transferAsset(${what}, replay)`, again, x);
        assert.equal(again.id, x.created.id, `${what}: a replay with the same externalId and body must return the original transfer`);
        if (again.txHash !== undefined) assert.equal(again.txHash, x.confirmed.txHash, `${what}: replay txHash`);
      }
    });

    step('getWalletAssets: native reduced by exactly 1e12 + both fees, TEST balance 4900', async () => {
      const n = need(X.native?.confirmed, 'confirmed Native transfer');
      const e = need(X.erc20?.confirmed, 'confirmed Erc20 transfer');
      const bal = await assets('getWalletAssets(after transfers)');
      const want = X.startNative - NATIVE_AMOUNT - BigInt(n.fee) - BigInt(e.fee);
      assert.equal(
        bal.native,
        want,
        `native balance must be ${X.startNative} - ${NATIVE_AMOUNT} - fee ${n.fee} (Native) - fee ${e.fee} (Erc20) = ${want}; difference ${bal.native - want}`,
      );
      assert.equal(bal.token, 4900n, `TEST balance after sending 100 of 5000: ${clip(JSON.stringify(bal.raw))}`);
    });

    step('listTransfers contains both transfers, as getTransfer returns them', async () => {
      const n = need(X.native?.confirmed, 'confirmed Native transfer');
      const e = need(X.erc20?.confirmed, 'confirmed Erc20 transfer');
      const list = await sdk('wallets', 'listTransfers')({ walletId: X.wallet.id });
      assert.ok(Array.isArray(list?.items), `items must be an array: ${clip(JSON.stringify(list))}`);
      if (list.nextPageToken !== undefined) assert.ok(isStr(list.nextPageToken), 'nextPageToken, if present, must be a string');
      const ids = list.items.map((x) => x?.id);
      assert.equal(new Set(ids).size, ids.length, `no transfer listed twice: ${ids.join(', ')}`);
      assert.equal(ids.length, 2, `the wallet made two transfers (the replays must not add any): ${ids.join(', ')}`);
      for (const [what, x, tr] of [['Native', X.native, n], ['Erc20', X.erc20, e]]) {
        const item = list.items.find((i) => i?.id === tr.id);
        assert.ok(item, `${what} transfer ${tr.id} not in listTransfers: ${ids.join(', ')}`);
        assertTransfer(`listTransfers(${what})`, item, x);
        for (const f of ['status', 'txHash', 'fee', 'dateRequested']) assert.equal(item[f], tr[f], `listTransfers ${what} ${f}`);
      }
    });

    // GetWalletHistoryResponse as @dfns/sdk declares it (NativeTransfer and Erc20Transfer items). The history is filled
    // by a background indexer, so the step polls for it.
    step('getWalletHistory: the faucet funding In, both transfers Out with txHash, value and fee; limit 1 pages through all', async () => {
      const n = need(X.native?.confirmed, 'confirmed Native transfer');
      const e = need(X.erc20?.confirmed, 'confirmed Erc20 transfer');
      const deadline = Date.now() + 90_000;
      let res;
      for (;;) {
        res = await sdk('wallets', 'getWalletHistory')({ walletId: X.wallet.id });
        if ((res?.items?.length ?? 0) >= 4) break;
        assert.ok(Date.now() < deadline, `history not complete within 90 s: ${clip(JSON.stringify(res), 900)}`);
        await sleep(500);
      }
      const j = clip(JSON.stringify(res), 1500);
      assert.equal(res.walletId, X.wallet.id, `walletId: ${j}`);
      assert.equal(res.network, NETWORK, `network: ${j}`);
      assert.equal(res.items.length, 4, `two faucet fundings and two transfers: ${j}`);
      for (const [i, it] of res.items.entries()) {
        const where = `getWalletHistory.items[${i}]`;
        if (it.walletId !== X.wallet.id || it.network !== NETWORK) shapeIssue(where, `walletId/network: ${JSON.stringify(it)}`);
        if (!['In', 'Out'].includes(it.direction)) shapeIssue(where, `direction must be In|Out, got ${JSON.stringify(it.direction)}`);
        if (!['NativeTransfer', 'Erc20Transfer'].includes(it.kind)) shapeIssue(where, `kind ${JSON.stringify(it.kind)}`);
        if (typeof it.blockNumber !== 'number') shapeIssue(where, `blockNumber must be a number, got ${JSON.stringify(it.blockNumber)}`);
        if (!HEX32.test(it.txHash ?? '')) shapeIssue(where, `txHash must be 0x + 64 hex digits, got ${JSON.stringify(it.txHash)}`);
        checkOptStr(where, it, ['index', 'from', 'to', 'fee', 'contract']);
        checkDate(where, 'timestamp', it.timestamp);
        if (!isStr(it.value) || !INT.test(it.value)) shapeIssue(where, `value must be an integer string, got ${JSON.stringify(it.value)}`);
        if (typeof it.decimals !== 'number') shapeIssue(where, `decimals (deprecated, still required) must be a number, got ${JSON.stringify(it.decimals)}`);
        if (it.kind === 'NativeTransfer' && !isStr(it.symbol)) shapeIssue(where, `a NativeTransfer's symbol must be a string, got ${JSON.stringify(it.symbol)}`);
        if (it.kind === 'Erc20Transfer' && (!isStr(it.contract) || !isStr(it.from) || !isStr(it.to))) shapeIssue(where, `an Erc20Transfer needs contract, from and to: ${JSON.stringify(it)}`);
        if (!it.metadata?.asset || typeof it.metadata.asset !== 'object') shapeIssue(where, `metadata.asset must be an object: ${JSON.stringify(it.metadata)}`);
        if (it.metadata?.fee !== undefined && typeof it.metadata.fee !== 'object') shapeIssue(where, `metadata.fee, if present, must be an object`);
      }
      const find = (kind, direction, txHash) => res.items.find((it) => it.kind === kind && it.direction === direction && (txHash === undefined || it.txHash === txHash));
      const nOut = find('NativeTransfer', 'Out', n.txHash);
      const eOut = find('Erc20Transfer', 'Out', e.txHash);
      assert.ok(nOut && eOut, `both transfers listed Out by txHash: ${j}`);
      assert.equal(nOut.value, NATIVE_AMOUNT.toString(), 'native Out value');
      assert.ok(sameAddr(nOut.to, TO) && sameAddr(nOut.from, X.wallet.address), 'native Out from/to');
      assert.equal(nOut.fee, n.fee, 'native Out fee = the transfer fee');
      assert.equal(eOut.value, '100', 'Erc20 Out value');
      assert.ok(sameAddr(eOut.contract, X.token.contract) && sameAddr(eOut.to, TO), 'Erc20 Out contract/to');
      assert.equal(eOut.fee, e.fee, 'Erc20 Out fee = the transfer fee');
      assert.equal(eOut.metadata.asset.symbol, 'TEST', 'Erc20 metadata.asset.symbol');
      assert.equal(eOut.metadata.asset.decimals, 6, 'Erc20 metadata.asset.decimals');
      assert.equal(find('NativeTransfer', 'In')?.value, ONE_ETH.toString(), `faucet funding In: ${j}`);
      assert.equal(find('Erc20Transfer', 'In')?.value, '5000', `faucet mint In: ${j}`);

      const seen = [];
      let token;
      for (let pages = 0; pages < 5; pages++) {
        const page = await sdk('wallets', 'getWalletHistory')({ walletId: X.wallet.id, query: { limit: '1', ...(token ? { paginationToken: token } : {}) } });
        assert.equal(page.items.length, 1, `limit 1: ${clip(JSON.stringify(page))}`);
        seen.push(`${page.items[0].txHash}/${page.items[0].direction}/${page.items[0].kind}`);
        token = page.nextPageToken;
        if (token === undefined) break;
        assert.ok(isStr(token), 'nextPageToken, if present, must be a string');
      }
      assert.deepEqual(seen, res.items.map((it) => `${it.txHash}/${it.direction}/${it.kind}`), 'pages give the same items in the same order');
    });
  });

  // Broadcast requests (README "Broadcast transactions"): the funded wallet of the transfers sends native coin with
  // wallets.broadcastTransaction (kind Evm: the server fills nonce, gas and fees); getTransaction follows it to
  // Confirmed, listTransactions lists it once (a replay with the same externalId adds nothing), and the balance drops
  // by exactly the value and the reported fee.
  describe('broadcast transactions on the EthereumSepolia dev chain', () => {
    const T = {};
    function assertTransaction(what, tx, body) {
      assert.ok(tx && typeof tx === 'object', `${what}: transaction request must be an object, got ${clip(JSON.stringify(tx))}`);
      const j = clip(JSON.stringify(tx), 900);
      assert.ok(isStr(tx.id) && tx.id.startsWith('tx-'), `${what}: id must be a string starting "tx-": ${j}`);
      assert.equal(tx.walletId, X.wallet.id, `${what}: walletId: ${j}`);
      assert.equal(tx.network, NETWORK, `${what}: network: ${j}`);
      assert.ok(isStr(tx.requester?.userId) && tx.requester.userId.length > 0, `${what}: requester.userId: ${j}`);
      assert.deepEqual(tx.requestBody, body, `${what}: requestBody must echo the request body: ${j}`);
      assert.ok(XFR_STATUSES.includes(tx.status), `${what}: status must be one of ${XFR_STATUSES.join('|')}: ${j}`);
      assert.ok(!['Failed', 'Rejected'].includes(tx.status), `${what}: status ${tx.status} (reason ${JSON.stringify(tx.reason)}): ${j}`);
      assert.ok(isStr(tx.dateRequested) && ISO.test(tx.dateRequested), `${what}: dateRequested must be an ISO-8601 string: ${j}`);
      for (const f of ['dateBroadcasted', 'dateConfirmed'])
        if (tx[f] !== undefined) assert.ok(isStr(tx[f]) && ISO.test(tx[f]), `${what}: ${f}, if present, must be an ISO-8601 string: ${j}`);
      assert.equal(tx.externalId, body.externalId, `${what}: externalId must be echoed: ${j}`);
      if (tx.status === 'Confirmed') {
        assert.match(tx.txHash ?? '', HEX32, `${what}: a Confirmed transaction's txHash: ${j}`);
        assert.ok(isStr(tx.fee) && INT.test(tx.fee) && BigInt(tx.fee) > 0n, `${what}: a Confirmed transaction's fee: ${j}`);
      }
    }

    step('broadcastTransaction kind Evm -> a tx- request; getTransaction follows it to Confirmed; the balance drops by value + fee', async () => {
      need(X.wallet, 'funded wallet');
      const before = await assets('getWalletAssets(before broadcast)');
      T.body = { kind: 'Evm', to: TO, value: '4242', externalId: `compat-tx-${uniq()}` };
      const tx = await sdk('wallets', 'broadcastTransaction')({ walletId: X.wallet.id, body: { ...T.body } });
      assertTransaction('broadcastTransaction(Evm)', tx, T.body);
      const ua = wire.filter((e) => e.via === 'sdk' && e.method === 'POST' && pathOf(e.url) === `/wallets/${X.wallet.id}/transactions`).at(-1);
      assert.ok(ua?.userAction, 'the SDK sends broadcastTransaction with an x-dfns-useraction header');
      const deadline = Date.now() + 20_000;
      for (;;) {
        T.confirmed = await sdk('wallets', 'getTransaction')({ walletId: X.wallet.id, transactionId: tx.id });
        assertTransaction('getTransaction', T.confirmed, T.body);
        assert.equal(T.confirmed.id, tx.id, 'getTransaction id');
        if (T.confirmed.status === 'Confirmed') break;
        assert.ok(Date.now() < deadline, `not Confirmed within 20 s; last: ${clip(JSON.stringify(T.confirmed))}`);
        await sleep(200);
      }
      const again = await sdk('wallets', 'broadcastTransaction')({ walletId: X.wallet.id, body: { ...T.body } });
      assert.equal(again.id, tx.id, 'a replay with the same externalId and body must return the original transaction');
      const after = await assets('getWalletAssets(after broadcast)');
      const want = before.native - 4242n - BigInt(T.confirmed.fee);
      assert.equal(after.native, want, `native balance must drop by 4242 + fee ${T.confirmed.fee}; difference ${after.native - want}`);
    });

    step('listTransactions contains the transaction once, as getTransaction returns it', async () => {
      const c = need(T.confirmed, 'confirmed transaction');
      const list = await sdk('wallets', 'listTransactions')({ walletId: X.wallet.id });
      assert.ok(Array.isArray(list?.items), `items must be an array: ${clip(JSON.stringify(list))}`);
      assert.equal(list.walletId, X.wallet.id, 'listTransactions walletId');
      const ids = list.items.map((x) => x?.id);
      assert.deepEqual(ids, [c.id], `the wallet broadcast one transaction: ${ids.join(', ')}`);
      assertTransaction('listTransactions', list.items[0], T.body);
      for (const f of ['status', 'txHash', 'fee', 'dateRequested', 'dateBroadcasted', 'dateConfirmed']) assert.equal(list.items[0][f], c[f], `listTransactions ${f}`);
    });
  });

  describe('error responses', () => {
    const UNKNOWN_WALLET = 'wa-00000-00000-0000000000000000';

    step('getWallet of an unknown id -> DfnsError 404 with error.message', async () => {
      await expectDfnsError(sdk('wallets', 'getWallet')({ walletId: UNKNOWN_WALLET }), 404, 'getWallet(unknown)');
      await expectDfnsError(sdk('keys', 'getKey')({ keyId: 'key-00000-00000-0000000000000000' }), 404, 'getKey(unknown)');
    });

    step('generateSignature on an unknown wallet -> DfnsError 404', async () => {
      await expectDfnsError(
        sdk('wallets', 'generateSignature')({ walletId: UNKNOWN_WALLET, body: { kind: 'Hash', hash: bytesToHex(crypto.randomBytes(32)) } }),
        404,
        'wallets.generateSignature(unknown wallet)',
      );
    });

    step('kind Hash with a 31-byte hash -> DfnsError 400', async () => {
      const w = need(W.wallet, 'wallet');
      await expectDfnsError(
        sdk('wallets', 'generateSignature')({ walletId: w.id, body: { kind: 'Hash', hash: bytesToHex(crypto.randomBytes(31)) } }),
        400,
        'wallets.generateSignature(Hash of 31 bytes)',
      );
    });

    step('every error response had a JSON body with error.message', async (t) => {
      const errors = wire.filter((e) => e.status >= 400);
      assert.ok(errors.length > 0, 'no error responses were observed');
      const bad = [];
      for (const e of errors) {
        let j;
        try {
          j = JSON.parse(e.responseBody);
        } catch {}
        t.diagnostic(`${e.method} ${pathOf(e.url)} -> ${e.status} ${clip(j?.error?.message ?? e.responseBody, 120)}`);
        if (!isStr(j?.error?.message) || j.error.message.length === 0) bad.push(`${e.method} ${pathOf(e.url)} -> ${e.status}: ${clip(e.responseBody)}`);
      }
      assert.deepEqual(bad, [], 'error bodies without error.message');
    });
  });

  step('all responses match the @dfns/sdk type declarations', async () => {
    const { summary, count } = shapeIssueSummary();
    assert.deepEqual(summary, [], `${count} response field problem(s) against the @dfns/sdk ${SDK_VERSION} types`);
  });
});
