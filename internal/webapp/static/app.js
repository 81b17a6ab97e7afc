// countersign end-user wallet: the Dfns end-user flows with WebAuthn, no library.
// Every write is a user action: /auth/action/init -> navigator.credentials.get -> /auth/action,
// then the request itself with the X-DFNS-USERACTION header (dfns-api.md §2).
'use strict';

const NETWORK = 'BaseSepolia';
const $ = (id) => document.getElementById(id);
const state = { token: '', username: '', wallet: null };

const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const unb64u = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));
const utf8 = (s) => new TextEncoder().encode(s);

function status(msg) { $('status').textContent = msg; }
function fail(err) { $('error').textContent = String(err && err.message ? err.message : err); status(''); }

// api sends a JSON request and throws the Dfns error message on failure.
async function api(method, path, body, { token = state.token, userAction } = {}) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  if (userAction) headers['X-DFNS-USERACTION'] = userAction;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)) });
  const text = await res.text();
  let json; try { json = JSON.parse(text); } catch { json = undefined; }
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json?.error?.message ?? text}`);
  return json;
}

// assertion signs a Dfns challenge (login or user action) with a passkey.
async function assertion(ch) {
  const cred = await navigator.credentials.get({ publicKey: {
    challenge: utf8(ch.challenge), rpId: ch.rp?.id, userVerification: 'required', timeout: 60000,
    allowCredentials: (ch.allowCredentials?.webauthn ?? []).map((c) => ({ type: 'public-key', id: unb64u(c.id) })),
  } });
  const r = cred.response;
  return { kind: 'Fido2', credentialAssertion: {
    credId: b64u(cred.rawId), clientData: b64u(r.clientDataJSON), authenticatorData: b64u(r.authenticatorData),
    signature: b64u(r.signature), userHandle: r.userHandle ? b64u(r.userHandle) : undefined,
  } };
}

// signed sends a write with a user action signed by the passkey.
async function signed(method, path, body) {
  const payload = JSON.stringify(body);
  status('Confirm with your passkey…');
  const ch = await api('POST', '/auth/action/init', { userActionPayload: payload, userActionHttpMethod: method, userActionHttpPath: path, userActionServerKind: 'Api' });
  const { userAction } = await api('POST', '/auth/action', { challengeIdentifier: ch.challengeIdentifier, firstFactor: await assertion(ch) });
  return api(method, path, payload, { userAction });
}

function signedIn(token, username) {
  state.token = token; state.username = username;
  $('who').textContent = username;
  $('auth').hidden = true; $('account').hidden = false;
}

async function signup() {
  const email = $('email').value.trim();
  status('Creating your account…');
  const ch = await api('POST', '/app/demo/signup', { email }, { token: '' });
  const cred = await navigator.credentials.create({ publicKey: {
    challenge: utf8(ch.challenge), rp: { id: ch.rp.id, name: ch.rp.name },
    user: { id: utf8(ch.user.id), name: ch.user.name, displayName: ch.user.displayName },
    pubKeyCredParams: ch.pubKeyCredParams, authenticatorSelection: ch.authenticatorSelection,
    attestation: ch.attestation, timeout: 60000,
    excludeCredentials: (ch.excludeCredentials ?? []).map((c) => ({ type: 'public-key', id: unb64u(c.id) })),
  } });
  const reg = await api('POST', '/auth/registration/enduser', {
    firstFactorCredential: { credentialKind: 'Fido2', credentialName: 'passkey', credentialInfo: {
      credId: b64u(cred.rawId), clientData: b64u(cred.response.clientDataJSON), attestationData: b64u(cred.response.attestationObject) } },
    wallets: [],
  }, { token: ch.temporaryAuthenticationToken });
  signedIn(reg.authentication.token, reg.user.username);
  status('Signed up.');
}

async function login() {
  const username = $('email').value.trim();
  status('Logging in…');
  const ch = await api('POST', '/auth/login/init', { username }, { token: '' });
  const { token } = await api('POST', '/auth/login', { challengeIdentifier: ch.challengeIdentifier, firstFactor: await assertion(ch) }, { token: '' });
  signedIn(token, username);
  const list = await api('GET', '/wallets');
  if (list.items.length > 0) showWallet(list.items[0]);
  status('Logged in.');
}

function showWallet(w) {
  state.wallet = w;
  $('wallet-id').textContent = w.id; $('wallet-network').textContent = w.network; $('wallet-address').textContent = w.address;
  $('wallet').hidden = false;
  return refresh();
}

async function refresh() {
  const as = await api('GET', `/wallets/${state.wallet.id}/assets`);
  const native = as.assets.find((a) => a.kind === 'Native');
  $('balance').textContent = native ? native.balance : '0';
}

async function createWallet() {
  const w = await signed('POST', '/wallets', { network: NETWORK, name: 'my wallet' });
  await showWallet(w);
  status('Wallet created.');
}

async function fund() {
  status('Asking the dev faucet…');
  await api('POST', '/dev/faucet', { network: state.wallet.network, address: state.wallet.address, amount: '1000000000000000000' });
  await refresh();
  status('Funded.');
}

async function transfer() {
  const w = state.wallet;
  const tr = await signed('POST', `/wallets/${w.id}/transfers`, { kind: 'Native', to: $('to').value.trim(), amount: $('amount').value.trim() });
  $('transfer-status').textContent = tr.status;
  status('Transfer requested.');
  for (let i = 0; i < 240 && !['Confirmed', 'Failed', 'Rejected'].includes($('transfer-status').textContent); i++) {
    await new Promise((r) => setTimeout(r, 500));
    const t = await api('GET', `/wallets/${w.id}/transfers/${tr.id}`);
    $('transfer-status').textContent = t.status;
    $('transfer-hash').textContent = t.txHash ?? '';
  }
  status(`Transfer ${$('transfer-status').textContent}.`);
  await refresh();
}

async function logout() {
  await api('PUT', '/auth/logout', {}).catch(() => {});
  state.token = ''; state.wallet = null;
  $('auth').hidden = false; $('account').hidden = true; $('wallet').hidden = true;
  status('Logged out.');
}

// Each button runs one step; errors are shown, never swallowed.
for (const [id, fn] of Object.entries({ signup, login, 'create-wallet': createWallet, refresh, fund, transfer, logout })) {
  $(id).addEventListener('click', async (ev) => {
    ev.target.disabled = true;
    $('error').textContent = '';
    try { await fn(); } catch (err) { fail(err); } finally { ev.target.disabled = false; }
  });
}
