// Compatibility test: the official Dfns TypeScript SDK (@dfns/sdk + @dfns/sdk-keysigner) against a real countersign
// server. The server is started here on loopback with a fresh data directory; the bootstrap admin it writes to
// <data-dir>/bootstrap.env is used to create service accounts (one per key type), which then act on their own
// behalf, create personal access tokens, and are deactivated, reactivated, renamed and archived.
//
// The assertions follow what the SDK sends and reads (see /work/shared/dfns-sdk-wire.md and the SDK's own type
// declarations in node_modules/@dfns/sdk/generated/auth/types.d.ts), not the server's implementation.
//
// The server start-up, the wire log and the step/raw-HTTP helpers live in helpers.mjs (shared with wallets.test.mjs),
// which also documents the environment variables (COUNTERSIGN_BIN, COMPAT_SERVER_LOG, COMPAT_KEEP_DATA).

import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import {
  AsymmetricKeySigner,
  SDK_VERSION,
  admin,
  assertErrorBody,
  assertRefused,
  clip,
  client,
  errorResponses,
  expectDfnsError,
  isBool,
  isStr,
  ISO,
  need,
  pathOf,
  raw,
  shapeIssue,
  shapeIssueSummary,
  startServer,
  step,
  stopServer,
  uniq,
  userActionToken,
  wire,
} from './helpers.mjs';

const TOKEN_KINDS = ['Pat', 'ServiceAccount', 'Token', 'Code', 'Recovery', 'Temp', 'Application'];
const USER_KINDS = ['DfnsStaff', 'AccountUser', 'CustomerEmployee', 'EndUser'];

function checkPermissionAssignments(where, v) {
  if (!Array.isArray(v)) return shapeIssue(where, `permissionAssignments must be an array, got ${JSON.stringify(v)}`);
  v.forEach((a, i) => {
    for (const f of ['permissionName', 'permissionId', 'assignmentId'])
      if (!isStr(a?.[f])) shapeIssue(`${where}.permissionAssignments[${i}]`, `${f} must be a string`);
  });
}
// AccessToken as declared by @dfns/sdk 0.8.21 (e.g. ListPersonalAccessTokensResponse.items[]).
function checkAccessToken(where, tok, { secret } = {}) {
  if (!tok || typeof tok !== 'object') return shapeIssue(where, `access token must be an object, got ${JSON.stringify(tok)}`);
  for (const f of ['dateCreated', 'credId', 'linkedUserId', 'linkedAppId', 'name', 'orgId', 'publicKey', 'tokenId'])
    if (!isStr(tok[f])) shapeIssue(where, `${f} must be a string, got ${JSON.stringify(tok[f])}`);
  if (!isBool(tok.isActive)) shapeIssue(where, `isActive must be a boolean, got ${JSON.stringify(tok.isActive)}`);
  if (!TOKEN_KINDS.includes(tok.kind)) shapeIssue(where, `kind must be one of ${TOKEN_KINDS.join('|')}, got ${JSON.stringify(tok.kind)}`);
  if (isStr(tok.dateCreated) && !ISO.test(tok.dateCreated)) shapeIssue(where, `dateCreated is not ISO-8601: ${tok.dateCreated}`);
  if (isStr(tok.tokenId) && !tok.tokenId.startsWith('to-')) shapeIssue(where, `tokenId should start with "to-": ${tok.tokenId}`);
  checkPermissionAssignments(where, tok.permissionAssignments);
  if (secret === true && !isStr(tok.accessToken)) shapeIssue(where, 'accessToken (the secret) missing from a create response');
  if (secret === false && tok.accessToken !== undefined)
    shapeIssue(where, 'accessToken (the secret) returned outside a create response; Dfns shows it only once');
}
function checkUserInfo(where, u) {
  if (!u || typeof u !== 'object') return shapeIssue(where, `userInfo must be an object, got ${JSON.stringify(u)}`);
  for (const f of ['username', 'name', 'userId', 'credentialUuid', 'orgId'])
    if (!isStr(u[f])) shapeIssue(where, `userInfo.${f} must be a string, got ${JSON.stringify(u[f])}`);
  for (const f of ['isActive', 'isServiceAccount', 'isRegistered'])
    if (!isBool(u[f])) shapeIssue(where, `userInfo.${f} must be a boolean, got ${JSON.stringify(u[f])}`);
  if (!USER_KINDS.includes(u.kind)) shapeIssue(where, `userInfo.kind must be one of ${USER_KINDS.join('|')}, got ${JSON.stringify(u.kind)}`);
  if (u.permissions !== undefined && !Array.isArray(u.permissions)) shapeIssue(where, 'userInfo.permissions, if present, must be an array');
  checkPermissionAssignments(`${where}.userInfo`, u.permissionAssignments);
}
// ServiceAccount = {userInfo, accessTokens[]} (CreateServiceAccountResponse, ListServiceAccountsResponse.items[], …).
function checkServiceAccount(where, sa, { secret } = {}) {
  if (!sa || typeof sa !== 'object') return shapeIssue(where, `service account must be an object, got ${JSON.stringify(sa)}`);
  checkUserInfo(where, sa.userInfo);
  if (sa.userInfo && sa.userInfo.isServiceAccount !== true) shapeIssue(where, 'userInfo.isServiceAccount must be true');
  if (!Array.isArray(sa.accessTokens) || sa.accessTokens.length === 0)
    return shapeIssue(where, `accessTokens must be a non-empty array, got ${JSON.stringify(sa.accessTokens)}`);
  sa.accessTokens.forEach((tok, i) => {
    // secret: true -> accessTokens[0] must carry the token; false -> no entry may carry it.
    checkAccessToken(`${where}.accessTokens[${i}]`, tok, { secret: secret === true && i > 0 ? undefined : secret });
    if (tok?.kind !== undefined && tok.kind !== 'ServiceAccount')
      shapeIssue(`${where}.accessTokens[${i}]`, `kind should be "ServiceAccount", got ${JSON.stringify(tok.kind)}`);
    if (isStr(tok?.linkedUserId) && sa.userInfo?.userId && tok.linkedUserId !== sa.userInfo.userId)
      shapeIssue(`${where}.accessTokens[${i}]`, `linkedUserId ${tok.linkedUserId} != userInfo.userId ${sa.userInfo.userId}`);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers: keys, JWT payloads.
// ---------------------------------------------------------------------------------------------------------------
const pemEncoding = {
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
};
const KEY_TYPES = [
  { label: 'Ed25519', gen: () => crypto.generateKeyPairSync('ed25519', pemEncoding) },
  { label: 'P-256', gen: () => crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1', ...pemEncoding }) },
  { label: 'secp256k1', gen: () => crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1', ...pemEncoding }) },
  { label: 'RSA-2048', gen: () => crypto.generateKeyPairSync('rsa', { modulusLength: 2048, ...pemEncoding }) },
];
function jwtPayload(token) {
  assert.ok(isStr(token), `token must be a string, got ${JSON.stringify(token)}`);
  const parts = token.split('.');
  assert.equal(parts.length, 3, `token must be a JWT with 3 dot-separated segments, got ${parts.length}: ${clip(token, 80)}`);
  let payload;
  try {
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch (err) {
    assert.fail(`JWT payload segment is not base64url JSON: ${err.message}`);
  }
  return payload;
}
function tokenOrgId(token) {
  const p = jwtPayload(token);
  const meta = p['https://custom/app_metadata'];
  assert.ok(meta && typeof meta === 'object', `JWT payload lacks "https://custom/app_metadata": ${JSON.stringify(p)}`);
  assert.ok(isStr(meta.orgId) && meta.orgId.length > 0, `JWT "https://custom/app_metadata".orgId must be a string: ${JSON.stringify(meta)}`);
  return meta.orgId;
}

// ---------------------------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------------------------
describe(`countersign with the official @dfns/sdk ${SDK_VERSION} + @dfns/sdk-keysigner`, () => {
  before(startServer, { timeout: 600_000 });
  after(stopServer, { timeout: 30_000 });

  step('bootstrap admin: token is a JWT with an orgId claim, and it can list service accounts', async () => {
    admin.orgId = tokenOrgId(admin.token);
    const list = await admin.client.auth.listServiceAccounts();
    assert.ok(Array.isArray(list?.items), `listServiceAccounts: items must be an array: ${JSON.stringify(list)}`);
    list.items.forEach((sa, i) => checkServiceAccount(`admin listServiceAccounts.items[${i}]`, sa, { secret: false }));
  });

  step('DfnsApiClient orgId option: accepted when it equals the token orgId, refused client-side otherwise', async () => {
    const orgId = need(admin.orgId, 'admin orgId');
    const scoped = client(admin.token, admin.credId, admin.privateKey, { orgId });
    const list = await scoped.auth.listServiceAccounts();
    assert.ok(Array.isArray(list.items));
    // A user-action call too, so /auth/action/init and /auth/action also pass the org check.
    const { publicKey } = KEY_TYPES[1].gen();
    const sa = await scoped.auth.createServiceAccount({ body: { name: `compat-orgid-${uniq()}`, publicKey } });
    assert.equal(sa?.userInfo?.orgId, orgId, 'service account userInfo.orgId must equal the token orgId');
    const wrong = client(admin.token, admin.credId, admin.privateKey, { orgId: `${orgId}-other` });
    const before = wire.length;
    await assert.rejects(wrong.auth.listServiceAccounts(), /not scoped to org/);
    assert.equal(wire.length, before, 'the SDK must refuse a mismatching orgId before sending anything');
  });

  const accounts = {}; // label -> {sa, token, credId, keys, client, pat, patKeys}

  for (const kt of KEY_TYPES) {
    describe(`service account with a ${kt.label} key`, () => {
      const st = (accounts[kt.label] = {});
      const kstep = (name, fn) => step(`${name} [${kt.label}]`, fn);

      kstep('admin: createServiceAccount', async () => {
        st.keys = kt.gen();
        st.name = `compat-${kt.label.toLowerCase()}-${uniq()}`;
        const sa = await admin.client.auth.createServiceAccount({ body: { name: st.name, publicKey: st.keys.publicKey } });
        checkServiceAccount(`createServiceAccount(${kt.label})`, sa, { secret: true });
        assert.ok(isStr(sa?.userInfo?.userId) && sa.userInfo.userId.startsWith('us-'), `userInfo.userId must start "us-": ${JSON.stringify(sa?.userInfo)}`);
        assert.equal(sa.userInfo.isServiceAccount, true, 'userInfo.isServiceAccount');
        assert.ok(Array.isArray(sa.accessTokens) && sa.accessTokens.length >= 1, 'accessTokens must be a non-empty array');
        const tok = sa.accessTokens[0];
        const orgId = tokenOrgId(tok.accessToken);
        if (admin.orgId) assert.equal(orgId, admin.orgId, 'the service account token must carry the same orgId as the admin token');
        assert.ok(isStr(tok.credId) && tok.credId.length > 0, `accessTokens[0].credId must be a string: ${JSON.stringify(tok.credId)}`);
        assert.ok(isStr(tok.tokenId) && tok.tokenId.startsWith('to-'), `accessTokens[0].tokenId must start "to-": ${JSON.stringify(tok.tokenId)}`);
        assert.equal(tok.isActive, true, 'accessTokens[0].isActive');
        assert.equal(sa.userInfo.isActive, true, 'userInfo.isActive');
        st.sa = sa;
        st.id = sa.userInfo.userId;
        st.token = tok.accessToken;
        st.credId = tok.credId;
        st.client = client(st.token, st.credId, st.keys.privateKey);
      });

      kstep('admin: getServiceAccount returns it', async () => {
        const id = need(st.id, 'service account');
        const sa = await admin.client.auth.getServiceAccount({ serviceAccountId: id });
        checkServiceAccount(`getServiceAccount(${kt.label})`, sa, { secret: false });
        assert.equal(sa.userInfo.userId, id);
        assert.equal(sa.accessTokens?.[0]?.credId, st.credId, 'credId must be stable between create and get');
      });

      kstep('as itself: listServiceAccounts contains it', async () => {
        const c = need(st.client, 'service account client');
        const list = await c.auth.listServiceAccounts();
        assert.ok(Array.isArray(list?.items), `items must be an array: ${clip(JSON.stringify(list))}`);
        list.items.forEach((sa, i) => checkServiceAccount(`listServiceAccounts as ${kt.label} SA .items[${i}]`, sa, { secret: false }));
        assert.ok(list.items.some((s) => s?.userInfo?.userId === st.id), `${st.id} not in its own listServiceAccounts`);
      });

      kstep('as itself: createPersonalAccessToken (user action signed with the service account key)', async () => {
        const c = need(st.client, 'service account client');
        st.patKeys = kt.gen();
        st.patName = `pat-${kt.label.toLowerCase()}-${uniq()}`;
        const pat = await c.auth.createPersonalAccessToken({ body: { name: st.patName, publicKey: st.patKeys.publicKey } });
        checkAccessToken(`createPersonalAccessToken(${kt.label})`, pat, { secret: true });
        assert.ok(isStr(pat?.accessToken) && pat.accessToken.length > 0, `accessToken must be present: ${clip(JSON.stringify(pat))}`);
        const patOrg = tokenOrgId(pat.accessToken);
        if (admin.orgId) assert.equal(patOrg, admin.orgId, 'PAT orgId claim');
        assert.ok(isStr(pat.credId) && pat.credId.length > 0, 'PAT credId');
        assert.ok(isStr(pat.tokenId) && pat.tokenId.startsWith('to-'), `PAT tokenId must start "to-": ${pat.tokenId}`);
        assert.equal(pat.isActive, true, 'PAT isActive');
        if (pat.kind !== 'Pat') shapeIssue(`createPersonalAccessToken(${kt.label})`, `kind should be "Pat", got ${JSON.stringify(pat.kind)}`);
        if (pat.linkedUserId !== st.id) shapeIssue(`createPersonalAccessToken(${kt.label})`, `linkedUserId ${pat.linkedUserId} != creator ${st.id}`);
        st.pat = pat;
        st.patClient = client(pat.accessToken, pat.credId, st.patKeys.privateKey);
      });

      kstep('as itself: listPersonalAccessTokens contains the PAT', async () => {
        const pat = need(st.pat, 'PAT');
        const list = await st.client.auth.listPersonalAccessTokens();
        assert.ok(Array.isArray(list?.items), `items must be an array: ${clip(JSON.stringify(list))}`);
        list.items.forEach((t, i) => checkAccessToken(`listPersonalAccessTokens(${kt.label}).items[${i}]`, t, { secret: false }));
        assert.ok(list.items.some((t) => t?.tokenId === pat.tokenId), `${pat.tokenId} not in listPersonalAccessTokens`);
      });

      kstep('as itself: getPersonalAccessToken', async () => {
        const pat = need(st.pat, 'PAT');
        const got = await st.client.auth.getPersonalAccessToken({ tokenId: pat.tokenId });
        checkAccessToken(`getPersonalAccessToken(${kt.label})`, got, { secret: false });
        assert.equal(got.tokenId, pat.tokenId);
        assert.equal(got.credId, pat.credId);
        assert.equal(got.isActive, true);
      });

      kstep('as the PAT: listServiceAccounts works', async () => {
        const c = need(st.patClient, 'PAT client');
        const list = await c.auth.listServiceAccounts();
        assert.ok(Array.isArray(list?.items), `items must be an array: ${clip(JSON.stringify(list))}`);
      });

      kstep("as the PAT: /auth/action/init lists the PAT's own credential and /auth/action accepts its signature", async () => {
        const pat = need(st.pat, 'PAT');
        const init = await raw('POST', '/auth/action/init', {
          token: pat.accessToken,
          body: JSON.stringify({ userActionPayload: '{}', userActionHttpMethod: 'PUT', userActionHttpPath: `/auth/pats/${pat.tokenId}/activate`, userActionServerKind: 'Api' }),
        });
        assert.equal(init.status, 200, `init -> ${init.status} ${clip(init.text)}`);
        const ids = init.json?.allowCredentials?.key?.map((k) => k.id);
        assert.ok(Array.isArray(ids), `allowCredentials.key must be an array: ${clip(init.text)}`);
        assert.ok(ids.includes(pat.credId), `allowCredentials.key ${JSON.stringify(ids)} lacks the PAT credId ${pat.credId}`);
        const assertion = await new AsymmetricKeySigner({ credId: pat.credId, privateKey: st.patKeys.privateKey }).sign(init.json);
        const act = await raw('POST', '/auth/action', {
          token: pat.accessToken,
          body: JSON.stringify({ challengeIdentifier: init.json.challengeIdentifier, firstFactor: assertion }),
        });
        assert.equal(act.status, 200, `/auth/action -> ${act.status} ${clip(act.text)}`);
        assert.ok(isStr(act.json?.userAction), 'userAction must be a string');
      });

      kstep('as itself: deactivatePersonalAccessToken -> isActive false', async () => {
        const pat = need(st.pat, 'PAT');
        const res = await st.client.auth.deactivatePersonalAccessToken({ tokenId: pat.tokenId });
        checkAccessToken(`deactivatePersonalAccessToken(${kt.label})`, res, { secret: false });
        assert.equal(res?.tokenId, pat.tokenId);
        assert.equal(res?.isActive, false, `isActive must be false after deactivate: ${clip(JSON.stringify(res))}`);
        st.patDeactivated = true;
      });

      kstep('the deactivated PAT is refused with 401', async () => {
        need(st.patDeactivated, 'deactivated PAT');
        await expectDfnsError(st.patClient.auth.listServiceAccounts(), 401, 'listServiceAccounts with a deactivated PAT');
      });

      kstep('as itself: archivePersonalAccessToken', async () => {
        const pat = need(st.pat, 'PAT');
        const res = await st.client.auth.archivePersonalAccessToken({ tokenId: pat.tokenId });
        checkAccessToken(`archivePersonalAccessToken(${kt.label})`, res, { secret: false });
        assert.equal(res?.tokenId, pat.tokenId);
        assert.equal(res?.isActive, false, 'an archived PAT is not active');
        await expectDfnsError(st.patClient.auth.listServiceAccounts(), 401, 'listServiceAccounts with an archived PAT');
      });
    });
  }

  describe('admin lifecycle of a service account', () => {
    let st;
    step('deactivateServiceAccount -> inactive in the response, and its token is refused with 401', async () => {
      st = need(Object.values(accounts).find((a) => a.client), 'a working service account');
      const res = await admin.client.auth.deactivateServiceAccount({ serviceAccountId: st.id, body: {} });
      checkServiceAccount('deactivateServiceAccount', res, { secret: false });
      assert.equal(res?.userInfo?.userId, st.id);
      assert.ok(
        res?.accessTokens?.[0]?.isActive === false || res?.userInfo?.isActive === false,
        `after deactivate, accessTokens[0].isActive or userInfo.isActive must be false: ${clip(JSON.stringify(res))}`,
      );
      await expectDfnsError(st.client.auth.listServiceAccounts(), 401, 'listServiceAccounts with a deactivated service account token');
      st.deactivated = true;
    });

    step('activateServiceAccount -> active again; its token works, including a signed call', async () => {
      need(st?.deactivated, 'deactivated service account');
      const res = await admin.client.auth.activateServiceAccount({ serviceAccountId: st.id });
      checkServiceAccount('activateServiceAccount', res, { secret: false });
      assert.equal(res?.userInfo?.isActive, true, 'userInfo.isActive after activate');
      assert.equal(res?.accessTokens?.[0]?.isActive, true, 'accessTokens[0].isActive after activate');
      const list = await st.client.auth.listServiceAccounts();
      assert.ok(Array.isArray(list.items));
      const keys = KEY_TYPES[0].gen();
      const pat = await st.client.auth.createPersonalAccessToken({ body: { name: `pat-after-activate-${uniq()}`, publicKey: keys.publicKey } });
      assert.ok(isStr(pat?.accessToken), 'createPersonalAccessToken after re-activation');
    });

    step("updateServiceAccount({name:'renamed'})", async () => {
      const id = need(st?.id, 'service account');
      const res = await admin.client.auth.updateServiceAccount({ serviceAccountId: id, body: { name: 'renamed' } });
      checkServiceAccount('updateServiceAccount', res, { secret: false });
      assert.equal(res?.userInfo?.userId, id);
      assert.ok(
        res?.userInfo?.name === 'renamed' || res?.accessTokens?.[0]?.name === 'renamed',
        `the new name must show in userInfo.name or accessTokens[0].name: ${clip(JSON.stringify(res))}`,
      );
      const got = await admin.client.auth.getServiceAccount({ serviceAccountId: id });
      assert.ok(got?.userInfo?.name === 'renamed' || got?.accessTokens?.[0]?.name === 'renamed', 'getServiceAccount after rename');
    });

    step('archiveServiceAccount -> archived; its token is refused with 401', async () => {
      const id = need(st?.id, 'service account');
      const res = await admin.client.auth.archiveServiceAccount({ serviceAccountId: id });
      checkServiceAccount('archiveServiceAccount', res, { secret: false });
      assert.equal(res?.userInfo?.userId, id);
      assert.equal(res?.userInfo?.isActive, false, 'an archived service account is not active');
      await expectDfnsError(st.client.auth.listServiceAccounts(), 401, 'listServiceAccounts with an archived service account token');
    });

    step('archiveServiceAccount with query {force:true} (the SDK signs the path without ?force=true)', async () => {
      const other = need(
        Object.values(accounts).find((a) => a.client && a !== st),
        'a second working service account',
      );
      const res = await admin.client.auth.archiveServiceAccount({ serviceAccountId: other.id, query: { force: true } });
      checkServiceAccount('archiveServiceAccount(force)', res, { secret: false });
      assert.equal(res?.userInfo?.userId, other.id);
      await expectDfnsError(other.client.auth.listServiceAccounts(), 401, 'listServiceAccounts with a force-archived service account token');
    });
  });

  describe('user-action binding and error bodies (raw HTTP)', () => {
    const adminSigner = () => new AsymmetricKeySigner({ credId: admin.credId, privateKey: admin.privateKey });
    let rawSa; // created by the first step, used as "another principal"

    step('a valid hand-made user action is accepted once; the replay is refused and creates nothing', async () => {
      const keys = KEY_TYPES[0].gen();
      const name = `compat-raw-${uniq()}`;
      const body = JSON.stringify({ name, publicKey: keys.publicKey });
      const ua = await userActionToken({ token: admin.token, signer: adminSigner(), method: 'POST', urlPath: '/auth/service-accounts', payload: body });
      const first = await raw('POST', '/auth/service-accounts', { token: admin.token, userAction: ua, body });
      assert.ok(first.status === 200 || first.status === 201, `first use -> ${first.status} ${clip(first.text)}`);
      rawSa = { sa: first.json, keys, token: first.json?.accessTokens?.[0]?.accessToken, credId: first.json?.accessTokens?.[0]?.credId };
      const replay = await raw('POST', '/auth/service-accounts', { token: admin.token, userAction: ua, body });
      assertRefused(replay, [400, 401, 403], 'replayed x-dfns-useraction');
      const list = await admin.client.auth.listServiceAccounts();
      const same = list.items.filter((s) => s?.userInfo?.name === name || s?.accessTokens?.[0]?.name === name);
      assert.equal(same.length, 1, `the replay must not create a second service account named ${name}`);
    });

    step('a body changed after signing is refused and creates nothing', async () => {
      const keys = KEY_TYPES[1].gen();
      const name = `compat-signed-${uniq()}`;
      const signed = JSON.stringify({ name, publicKey: keys.publicKey });
      const ua = await userActionToken({ token: admin.token, signer: adminSigner(), method: 'POST', urlPath: '/auth/service-accounts', payload: signed });
      const tamperedName = `${name}-tampered`;
      const sent = JSON.stringify({ name: tamperedName, publicKey: keys.publicKey });
      const res = await raw('POST', '/auth/service-accounts', { token: admin.token, userAction: ua, body: sent });
      assertRefused(res, [400, 401, 403], 'body differs from userActionPayload');
      const list = await admin.client.auth.listServiceAccounts();
      assert.ok(
        !list.items.some((s) => s?.userInfo?.name === tamperedName || s?.accessTokens?.[0]?.name === tamperedName),
        'the tampered request must not have created a service account',
      );
    });

    step('a user action signed for another path is refused', async () => {
      const keys = KEY_TYPES[1].gen();
      const body = JSON.stringify({ name: `compat-path-${uniq()}`, publicKey: keys.publicKey });
      const ua = await userActionToken({ token: admin.token, signer: adminSigner(), method: 'POST', urlPath: '/auth/pats', payload: body });
      const res = await raw('POST', '/auth/service-accounts', { token: admin.token, userAction: ua, body });
      assertRefused(res, [400, 401, 403], 'x-dfns-useraction signed for POST /auth/pats used on POST /auth/service-accounts');
    });

    step('a user action obtained by another principal is refused', async () => {
      need(rawSa?.token, 'raw-created service account');
      const keys = KEY_TYPES[1].gen();
      const body = JSON.stringify({ name: `compat-principal-${uniq()}`, publicKey: keys.publicKey });
      const ua = await userActionToken({ token: admin.token, signer: adminSigner(), method: 'POST', urlPath: '/auth/pats', payload: body });
      const res = await raw('POST', '/auth/pats', { token: rawSa.token, userAction: ua, body });
      assertRefused(res, [400, 401, 403], "admin's x-dfns-useraction sent with a service account's bearer token");
    });

    step('POST /auth/service-accounts without x-dfns-useraction is refused with 401 or 403', async () => {
      const keys = KEY_TYPES[1].gen();
      const body = JSON.stringify({ name: `compat-noua-${uniq()}`, publicKey: keys.publicKey });
      const res = await raw('POST', '/auth/service-accounts', { token: admin.token, body });
      assertRefused(res, [401, 403], 'missing x-dfns-useraction');
    });

    step('/auth/action refuses a bad signature and a credential that is not the caller\'s', async () => {
      need(rawSa?.credId, 'raw-created service account');
      const payload = JSON.stringify({ name: `compat-sig-${uniq()}`, publicKey: KEY_TYPES[1].gen().publicKey });
      const initBody = JSON.stringify({ userActionPayload: payload, userActionHttpMethod: 'POST', userActionHttpPath: '/auth/service-accounts', userActionServerKind: 'Api' });

      let init = await raw('POST', '/auth/action/init', { token: admin.token, body: initBody });
      assert.equal(init.status, 200, `init -> ${init.status} ${clip(init.text)}`);
      const good = await adminSigner().sign(init.json);
      const sig = Buffer.from(good.credentialAssertion.signature, 'base64url');
      sig[sig.length - 1] ^= 0x01;
      const bad = { ...good, credentialAssertion: { ...good.credentialAssertion, signature: sig.toString('base64url') } };
      const r1 = await raw('POST', '/auth/action', { token: admin.token, body: JSON.stringify({ challengeIdentifier: init.json.challengeIdentifier, firstFactor: bad }) });
      assertRefused(r1, [400, 401, 403], 'assertion with a corrupted signature');

      init = await raw('POST', '/auth/action/init', { token: admin.token, body: initBody });
      assert.equal(init.status, 200, `init -> ${init.status} ${clip(init.text)}`);
      // Sign the admin's challenge with the other service account's key and credId (skipping the client-side check).
      const challenge = { ...init.json, allowCredentials: { ...init.json.allowCredentials, key: [{ type: 'public-key', id: rawSa.credId }] } };
      const foreign = await new AsymmetricKeySigner({ credId: rawSa.credId, privateKey: rawSa.keys.privateKey }).sign(challenge);
      const r2 = await raw('POST', '/auth/action', { token: admin.token, body: JSON.stringify({ challengeIdentifier: init.json.challengeIdentifier, firstFactor: foreign }) });
      assertRefused(r2, [400, 401, 403], "assertion made with another principal's credential");
    });

    step('unauthenticated, bad-token and unknown-id requests get JSON errors with the right status', async () => {
      assertRefused(await raw('GET', '/auth/service-accounts'), [401], 'no Authorization header');
      assertRefused(await raw('GET', '/auth/service-accounts', { token: 'not-a-token' }), [401], 'garbage bearer token');
      const forged = admin.token.slice(0, -4) + (admin.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      assertRefused(await raw('GET', '/auth/service-accounts', { token: forged }), [401], 'bearer token with a forged signature');
      assertRefused(await raw('GET', '/auth/service-accounts/us-00000-00000-00000000000000', { token: admin.token }), [404], 'unknown service account id');
      await expectDfnsError(admin.client.auth.getServiceAccount({ serviceAccountId: 'us-00000-00000-00000000000000' }), 404, 'SDK getServiceAccount(unknown)');
    });

    step('every error response so far had a JSON body with error.message', async (t) => {
      assert.ok(errorResponses.length > 0, 'no error responses were observed');
      const bad = [];
      for (const r of errorResponses) {
        t.diagnostic(`${r.what} -> ${r.status} ${clip(r.json?.error?.message ?? r.text, 120)}`);
        try {
          assertErrorBody(r);
        } catch (err) {
          bad.push(err.message);
        }
      }
      // SDK-side error responses are in the wire log too.
      for (const e of wire.filter((w) => w.via === 'sdk' && w.status >= 400)) {
        let j;
        try {
          j = JSON.parse(e.responseBody);
        } catch {}
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
