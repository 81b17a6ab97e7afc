// Compatibility test: delegated end users through the official Dfns TypeScript SDK (dfns-api.md §2.9, §3.2, §3.3,
// §4.4). The organization's server is the bootstrap admin service account (DfnsApiClient with its Key signer): it
// registers an end user with auth.createDelegatedRegistrationChallenge, the end user completes with
// auth.registerEndUser and a Key credential of their own (generated here; the SDK's AsymmetricKeySigner signs), the
// service account logs the end user in with auth.delegatedLogin and creates a wallet delegated to them. The end
// user then moves funds with DfnsDelegatedApiClient's Init/Complete pair, signing the challenge with their own key,
// while the same transfer by the service account is refused with 403.

import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

import { AsymmetricKeySigner, DfnsApiClient, admin, baseUrl, expectDfnsError, raw, startServer, step, stopServer, uniq } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { DfnsDelegatedApiClient } = require('@dfns/sdk');

const NETWORK = 'BaseSepolia';
const b64u = (b) => Buffer.from(b).toString('base64url');

// endUserKey is the end user's own Key credential: the organization never sees its private key.
function endUserKey() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' });
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const credId = b64u(crypto.randomBytes(16));
  const attest = (challenge) => {
    const clientData = Buffer.from(JSON.stringify({ type: 'key.create', challenge }));
    const clientDataHash = crypto.createHash('sha256').update(clientData).digest('hex');
    const fingerprint = JSON.stringify({ clientDataHash, publicKey: publicPem });
    const signature = crypto.sign(undefined, Buffer.from(fingerprint), privateKey).toString('hex');
    return {
      credentialKind: 'Key',
      credentialName: 'end user key',
      credentialInfo: { credId, clientData: b64u(clientData), attestationData: b64u(JSON.stringify({ publicKey: publicPem, signature })) },
    };
  };
  return { credId, attest, signer: new AsymmetricKeySigner({ credId, privateKey: privatePem }) };
}

describe('delegated end users through the official SDK', () => {
  before(startServer, { timeout: 600_000 });
  after(stopServer);

  const email = `end-${uniq()}@example.co`;
  const key = endUserKey();
  let userId;
  let endUserToken;
  let delegated; // DfnsDelegatedApiClient of the end user
  let wallet; // created at registration, delegated to the end user
  let orgWallet; // the organization's own wallet, the transfer's destination

  step('the service account registers an end user (auth.createDelegatedRegistrationChallenge)', async () => {
    const ch = await admin.client.auth.createDelegatedRegistrationChallenge({ body: { kind: 'EndUser', email } });
    assert.equal(typeof ch.temporaryAuthenticationToken, 'string');
    assert.equal(ch.user.name, email);
    assert.match(ch.user.id, /^us-/);
    userId = ch.user.id;
    // The end user answers with their own credential, and gets a wallet and a token in the same call.
    const anon = new DfnsApiClient({ baseUrl, authToken: ch.temporaryAuthenticationToken });
    const reg = await anon.auth.registerEndUser({
      body: { firstFactorCredential: key.attest(ch.challenge), wallets: [{ network: NETWORK, name: 'end user wallet' }] },
    });
    assert.equal(reg.user.id, userId);
    assert.equal(reg.credential.kind, 'Key');
    assert.equal(typeof reg.authentication.token, 'string');
    assert.equal(reg.wallets.length, 1);
    assert.equal(reg.wallets[0].network, NETWORK);
    assert.equal(reg.wallets[0].custodial, false);
    wallet = reg.wallets[0];
  });

  step('the service account logs the end user in (auth.delegatedLogin)', async () => {
    const res = await admin.client.auth.delegatedLogin({ body: { username: email } });
    assert.equal(typeof res.token, 'string');
    const claims = JSON.parse(Buffer.from(res.token.split('.')[1], 'base64url').toString());
    assert.equal(claims['https://custom/app_metadata'].userId, userId);
    endUserToken = res.token;
    delegated = new DfnsDelegatedApiClient({ baseUrl, authToken: endUserToken });
    const list = await delegated.wallets.listWallets({});
    assert.deepEqual(
      list.items.map((w) => w.id),
      [wallet.id],
      'the end user sees only their own wallet',
    );
  });

  step('a wallet created by the service account with delegateTo belongs to the end user', async () => {
    const w = await admin.client.wallets.createWallet({ body: { network: NETWORK, delegateTo: userId } });
    assert.equal(w.custodial, false);
    orgWallet = await admin.client.wallets.createWallet({ body: { network: NETWORK } });
    assert.equal(orgWallet.custodial, true);
    const list = await delegated.wallets.listWallets({});
    assert.deepEqual(new Set(list.items.map((x) => x.id)), new Set([wallet.id, w.id]));
    await expectDfnsError(delegated.wallets.getWallet({ walletId: orgWallet.id }), 404, "the end user reads the organization's wallet");
  });

  step('the end user signs a transfer with their own key (transferAssetInit / transferAssetComplete)', async () => {
    const fund = await raw('POST', '/dev/faucet', {
      token: admin.token,
      body: JSON.stringify({ network: NETWORK, address: wallet.address, amount: '1000000000000000000' }),
    });
    assert.equal(fund.status, 200, `faucet: ${fund.text}`);
    const request = { walletId: wallet.id, body: { kind: 'Native', to: orgWallet.address, amount: '12345' } };
    const challenge = await delegated.wallets.transferAssetInit(request);
    assert.ok(challenge.allowCredentials.key.some((c) => c.id === key.credId), 'the challenge names the end user key');
    const firstFactor = await key.signer.sign(challenge);
    const tr = await delegated.wallets.transferAssetComplete(request, { challengeIdentifier: challenge.challengeIdentifier, firstFactor });
    assert.equal(tr.walletId, wallet.id);
    assert.equal(tr.requester.userId, userId);
    let got = tr;
    const deadline = Date.now() + 60_000;
    while (got.status !== 'Confirmed' && got.status !== 'Failed' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      got = await delegated.wallets.getTransfer({ walletId: wallet.id, transferId: tr.id });
    }
    assert.equal(got.status, 'Confirmed');
  });

  step('the same transfer by the service account is refused (403) and the organization can still read', async () => {
    const request = { walletId: wallet.id, body: { kind: 'Native', to: orgWallet.address, amount: '12345' } };
    await expectDfnsError(admin.client.wallets.transferAsset(request), 403, 'the service account moves delegated funds');
    const w = await admin.client.wallets.getWallet({ walletId: wallet.id });
    assert.equal(w.id, wallet.id);
    const list = await admin.client.wallets.listTransfers({ walletId: wallet.id });
    assert.equal(list.items.length, 1, 'only the end user transfer exists');
  });

  step('keys.delegateKey and wallets.delegateWallet hand over for good (a second delegation is 409)', async () => {
    const k = await admin.client.keys.createKey({ body: { scheme: 'ECDSA', curve: 'secp256k1' } });
    assert.equal(k.custodial, true);
    const dk = await admin.client.keys.delegateKey({ keyId: k.id, body: { delegateTo: userId } });
    assert.deepEqual(dk, { keyId: k.id, status: 'Delegated' });
    await expectDfnsError(admin.client.keys.delegateKey({ keyId: k.id, body: { delegateTo: userId } }), 409, 'a second key delegation');
    const w = await admin.client.wallets.createWallet({ body: { network: NETWORK, delayDelegation: true } });
    const dw = await admin.client.wallets.delegateWallet({ walletId: w.id, body: { userId } });
    assert.deepEqual(dw, { walletId: w.id, status: 'Delegated' });
    const mine = await delegated.keys.getKey({ keyId: k.id });
    assert.equal(mine.custodial, false);
    const got = await delegated.wallets.getWallet({ walletId: w.id });
    assert.equal(got.signingKey.delegatedTo, userId);
  });

  step("the service account cannot sign the end user's challenge with its own key", async () => {
    const request = { walletId: wallet.id, body: { kind: 'Native', to: orgWallet.address, amount: '1' } };
    const challenge = await delegated.wallets.transferAssetInit(request);
    // The SDK signer only signs for a listed credential: list the organization's to make it try.
    const forged = { ...challenge, allowCredentials: { ...challenge.allowCredentials, key: [{ type: 'public-key', id: admin.credId }] } };
    const foreign = await new AsymmetricKeySigner({ credId: admin.credId, privateKey: admin.privateKey }).sign(forged);
    const act = await raw('POST', '/auth/action', {
      token: endUserToken,
      body: JSON.stringify({ challengeIdentifier: challenge.challengeIdentifier, firstFactor: foreign }),
    });
    assert.ok(act.status === 401 || act.status === 403, `the organization's key signed for the end user: ${act.status} ${act.text}`);
  });
});
