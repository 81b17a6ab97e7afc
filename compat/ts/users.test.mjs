// Compatibility test: people through the official Dfns TypeScript SDK. The bootstrap admin creates a user with
// dfns.auth.createUser; the user registers and logs in with the SDK's DfnsAuthenticator (Key credential: the SDK's
// AsymmetricKeySigner signs, and create() builds the key.create attestation of dfns-api.md §3.1.2, which the SDK
// leaves to the signer), lists and adds credentials through the SDK's user-action flow with the login token, logs
// out, and is deactivated by the admin. The shapes checked are those of node_modules/@dfns/sdk/generated/auth/types.d.ts.

import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

import { AsymmetricKeySigner, DfnsApiClient, DfnsError, admin, baseUrl, startServer, step, stopServer, uniq } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { DfnsAuthenticator } = require('@dfns/sdk');

const b64u = (b) => Buffer.from(b).toString('base64url');

// keyCredential is a fresh Ed25519 Key credential with a signer that can also create() it.
function keyCredential() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' });
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const credId = b64u(crypto.randomBytes(16));
  const keySigner = new AsymmetricKeySigner({ credId, privateKey: privatePem });
  const attest = (challenge) => {
    const clientData = Buffer.from(JSON.stringify({ type: 'key.create', challenge }));
    const clientDataHash = crypto.createHash('sha256').update(clientData).digest('hex');
    const fingerprint = JSON.stringify({ clientDataHash, publicKey: publicPem });
    const signature = crypto.sign(undefined, Buffer.from(fingerprint), privateKey).toString('hex');
    return {
      credentialKind: 'Key',
      credentialInfo: { credId, clientData: b64u(clientData), attestationData: b64u(JSON.stringify({ publicKey: publicPem, signature })) },
    };
  };
  return {
    credId,
    privatePem,
    attest,
    signer: { sign: (challenge) => keySigner.sign(challenge), create: async (challenge) => attest(challenge.challenge) },
  };
}

describe('people through the official SDK', () => {
  before(startServer, { timeout: 300_000 });
  after(stopServer);

  const email = `jane-${uniq()}@example.co`;
  const cred = keyCredential();
  let userId;
  let registrationCode;
  let token;
  let user; // DfnsApiClient with the login token
  let orgId;

  step('admin creates a user (dfns.auth.createUser)', async () => {
    const u = await admin.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    assert.equal(u.username, email);
    assert.equal(u.kind, 'CustomerEmployee');
    assert.equal(u.isActive, true);
    assert.equal(u.isRegistered, false);
    assert.match(u.userId, /^us-/);
    assert.match(u.registrationCode, /^[A-Z0-9]{3}-[A-Z0-9]{3}-[A-Z0-9]{3}$/, 'without SMTP the code comes back to the admin');
    userId = u.userId;
    orgId = u.orgId;
    registrationCode = u.registrationCode;
    const list = await admin.client.auth.listUsers({ query: { kind: 'CustomerEmployee' } });
    assert.ok(list.items.some((x) => x.userId === userId));
  });

  step('the user registers with DfnsAuthenticator.register', async () => {
    const auth = new DfnsAuthenticator({ baseUrl, signer: cred.signer });
    const res = await auth.register({ orgId: orgId, username: email, registrationCode });
    assert.equal(res.user.id, userId);
    assert.equal(res.user.username, email);
    assert.equal(res.credential.kind, 'Key');
    assert.match(res.credential.uuid, /^cr-/);
  });

  step('the user logs in with DfnsAuthenticator.login', async () => {
    const auth = new DfnsAuthenticator({ baseUrl, signer: cred.signer });
    const res = await auth.login({ orgId: orgId, username: email });
    assert.equal(typeof res.token, 'string');
    token = res.token;
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    assert.equal(claims['https://custom/app_metadata'].userId, userId);
    assert.equal(claims['https://custom/app_metadata'].orgId, orgId);
    assert.equal(claims['https://custom/username'], email);
    user = new DfnsApiClient({ baseUrl, authToken: token, signer: new AsymmetricKeySigner({ credId: cred.credId, privateKey: cred.privatePem }) });
  });

  step('the user lists credentials and adds a second key through a user action', async () => {
    const list = await user.auth.listCredentials();
    assert.equal(list.items.length, 1);
    assert.equal(list.items[0].credentialId, cred.credId);
    assert.equal(list.items[0].isActive, true);
    const second = keyCredential();
    const ch = await user.auth.createCredentialChallenge({ body: { kind: 'Key' } });
    assert.equal(ch.kind, 'Key');
    const created = await user.auth.createCredential({
      body: { ...second.attest(ch.challenge), credentialName: 'second key', challengeIdentifier: ch.challengeIdentifier },
    });
    assert.equal(created.credentialId, second.credId);
    assert.equal(created.kind, 'Key');
    assert.equal(created.isActive, true);
    const after = await user.auth.listCredentials();
    assert.equal(after.items.length, 2);
  });

  step('logout ends the session (dfns.auth.logout)', async () => {
    await user.auth.logout({ body: {} });
    await assert.rejects(user.auth.listCredentials(), (err) => err instanceof DfnsError && err.httpStatus === 401);
  });

  step('a deactivated user cannot log in', async () => {
    const u = await admin.client.auth.deactivateUser({ userId });
    assert.equal(u.isActive, false);
    const auth = new DfnsAuthenticator({ baseUrl, signer: cred.signer });
    await assert.rejects(auth.login({ orgId: orgId, username: email }), (err) => err instanceof DfnsError && err.httpStatus === 400);
    const back = await admin.client.auth.activateUser({ userId });
    assert.equal(back.isActive, true);
    const res = await auth.login({ orgId: orgId, username: email });
    assert.equal(typeof res.token, 'string');
  });
});
