// Shared harness for the countersign compatibility tests (auth.test.mjs, wallets.test.mjs): the wire log around the
// SDK's fetch, test steps that report the requests they made, raw HTTP, the server process (build, start, bootstrap
// admin, stop), and small EVM tools (hex, RLP, keccak-256, secp256k1, EIP-55/191/712) written here so the tests
// need no package beyond @dfns/sdk and @dfns/sdk-keysigner.
//
// Every test file runs in its own process under `node --test`, so each one starts its own server.
//
// Environment:
//   COUNTERSIGN_BIN   path to a built countersign binary (default: `go build ./cmd/countersign` from the repo root)
//   COMPAT_SERVER_LOG=1  stream the server's stdout/stderr while the tests run
//   COMPAT_KEEP_DATA=1   keep the temporary data directory (its path is printed)

import { it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');

// ---------------------------------------------------------------------------------------------------------------
// Wire log. The SDK sends through cross-fetch (node-fetch 2), which it captures when its modules load, so the
// logging wrapper has to be installed on the cross-fetch module *before* @dfns/sdk is required. Nothing is changed
// in what goes over the wire; the log only lets a failure name the exact request and the server's answer.
// ---------------------------------------------------------------------------------------------------------------
export const wire = [];
{
  const sdkDir = path.dirname(require.resolve('@dfns/sdk'));
  const crossFetch = require(require.resolve('cross-fetch', { paths: [sdkDir] }));
  const realFetch = crossFetch.fetch;
  crossFetch.fetch = async function loggingFetch(resource, options = {}) {
    const entry = {
      via: 'sdk',
      method: options.method ?? 'GET',
      url: String(resource),
      userAction: Boolean(options.headers?.['x-dfns-useraction']),
      requestBody: typeof options.body === 'string' ? options.body : options.body ? '<form>' : undefined,
    };
    wire.push(entry);
    const res = await realFetch.call(this, resource, options);
    entry.status = res.status;
    try {
      entry.responseBody = await res.clone().text();
    } catch (err) {
      entry.responseBody = `<unreadable: ${err.message}>`;
    }
    return res;
  };
}
export const { DfnsApiClient, DfnsError } = require('@dfns/sdk');
export const { AsymmetricKeySigner } = require('@dfns/sdk-keysigner');
export const SDK_VERSION = require('@dfns/sdk/package.json').version;

export const clip = (s, n = 600) => (s === undefined ? '' : s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s);
export const pathOf = (url) => {
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
};
export function describeWire(entries) {
  if (entries.length === 0) return '  (no HTTP request was made)';
  return entries
    .map(
      (e) =>
        `  [${e.via}] ${e.method} ${pathOf(e.url)}${e.userAction ? ' (x-dfns-useraction)' : ''}` +
        (e.requestBody !== undefined ? `\n      request body: ${clip(e.requestBody, 300)}` : '') +
        `\n      -> ${e.status ?? 'no response'} ${clip(e.responseBody)}`,
    )
    .join('\n');
}
export function describeError(err) {
  if (err instanceof DfnsError) {
    const ctx = err.context ?? {};
    return `DfnsError httpStatus=${err.httpStatus} message=${JSON.stringify(err.message)} url=${ctx.url ?? '-'} body=${clip(JSON.stringify(ctx.body))}`;
  }
  return `${err?.name ?? 'Error'}: ${err?.message ?? err}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Test steps: every step records the requests it made and, when it fails, reports them (method, path, status,
// bodies) in the error so the failing request is visible without re-running.
// ---------------------------------------------------------------------------------------------------------------
let anyFailure = false;
export function step(name, fn, timeout = 60_000) {
  return it(name, { timeout }, async (t) => {
    const mark = wire.length;
    try {
      await fn(t);
    } catch (err) {
      if (err instanceof Precondition) {
        t.skip(err.message);
        return;
      }
      anyFailure = true;
      const recent = wire.slice(Math.max(mark, wire.length - 8));
      const wrapped = new Error(`${describeError(err)}\nrequests made by this step (last ${recent.length}):\n${describeWire(recent)}`, {
        cause: err,
      });
      throw wrapped;
    }
  });
}
// A step whose input an earlier (failed) step should have produced is skipped, not failed, so the failure count
// reflects real server disagreements only.
export class Precondition extends Error {}
export function need(value, what) {
  if (!value) throw new Precondition(`skipped: no ${what} (an earlier step failed)`);
  return value;
}

// SDK-type conformance problems are collected, not thrown, so the functional steps keep running; one step at the end
// asserts that the list is empty.
export const shapeIssues = [];
export function shapeIssue(where, msg) {
  shapeIssues.push(`${where}: ${msg}`);
}
export const isStr = (v) => typeof v === 'string';
export const isBool = (v) => typeof v === 'boolean';
export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export let baseUrl; // from bootstrap.env DFNS_API_URL
export const errorResponses = []; // every non-2xx raw response, for the error-shape check

export async function raw(method, urlPath, { token, userAction, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (userAction) h['x-dfns-useraction'] = userAction;
  if (body !== undefined) h['content-type'] = 'application/json';
  const entry = { via: 'raw', method, url: new URL(urlPath, baseUrl).href, userAction: Boolean(userAction), requestBody: body };
  wire.push(entry);
  const res = await fetch(new URL(urlPath, baseUrl), { method, headers: h, body });
  const text = await res.text();
  entry.status = res.status;
  entry.responseBody = text;
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const out = { status: res.status, text, json, contentType: res.headers.get('content-type'), what: `${method} ${urlPath}` };
  if (res.status >= 400) errorResponses.push(out);
  return out;
}
export function assertRefused(res, allowed, why) {
  assert.ok(
    allowed.includes(res.status),
    `${why}: ${res.what} must be refused with ${allowed.join('/')}, got ${res.status} ${clip(res.text)}`,
  );
  assertErrorBody(res);
}
export function assertErrorBody(res) {
  assert.ok(res.json !== undefined, `${res.what} -> ${res.status}: error body is not JSON (the TS SDK then throws SyntaxError, not DfnsError): ${clip(res.text)}`);
  const msg = res.json?.error?.message;
  assert.ok(isStr(msg) && msg.length > 0, `${res.what} -> ${res.status}: error body lacks a non-empty error.message: ${clip(res.text)}`);
}

// The three-request user-action flow done by hand (what userActionFetch does), returning the userAction token.
export async function userActionToken({ token, signer, method, urlPath, payload }) {
  const init = await raw('POST', '/auth/action/init', {
    token,
    body: JSON.stringify({ userActionPayload: payload, userActionHttpMethod: method, userActionHttpPath: urlPath, userActionServerKind: 'Api' }),
  });
  assert.equal(init.status, 200, `POST /auth/action/init -> ${init.status} ${clip(init.text)}`);
  const assertion = await signer.sign(init.json);
  const act = await raw('POST', '/auth/action', {
    token,
    body: JSON.stringify({ challengeIdentifier: init.json.challengeIdentifier, firstFactor: assertion }),
  });
  assert.equal(act.status, 200, `POST /auth/action -> ${act.status} ${clip(act.text)}`);
  assert.ok(isStr(act.json?.userAction) && act.json.userAction.length > 0, `POST /auth/action: userAction must be a string: ${clip(act.text)}`);
  return act.json.userAction;
}

export async function expectDfnsError(promise, httpStatus, what) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: the call succeeded, but it must fail with HTTP ${httpStatus}`);
  assert.ok(
    err instanceof DfnsError,
    `${what}: expected a DfnsError (JSON error body with error.message), got ${describeError(err)}`,
  );
  assert.equal(err.httpStatus, httpStatus, `${what}: expected HTTP ${httpStatus}, got ${describeError(err)}`);
  assert.ok(isStr(err.message) && err.message.length > 0, `${what}: DfnsError has no message (error body lacks error.message): ${describeError(err)}`);
  return err;
}

export function client(authToken, credId, privateKey, extra = {}) {
  return new DfnsApiClient({ baseUrl, authToken, signer: new AsymmetricKeySigner({ credId, privateKey }), ...extra });
}
export const uniq = () => crypto.randomBytes(4).toString('hex');

// ---------------------------------------------------------------------------------------------------------------
// Server process.
// ---------------------------------------------------------------------------------------------------------------
let tmpRoot;
let dataDir;
let serverLogPath;
let server;
let serverExit; // Promise resolved with {code, signal}
export let admin; // {token, credId, privateKey, orgId, client}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
function tailLog(lines = 60) {
  try {
    return fs.readFileSync(serverLogPath, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no server log)';
  }
}
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function buildServer() {
  if (process.env.COUNTERSIGN_BIN) {
    const bin = path.resolve(process.env.COUNTERSIGN_BIN);
    assert.ok(fs.existsSync(bin), `COUNTERSIGN_BIN=${bin} does not exist`);
    return bin;
  }
  const bin = path.join(tmpRoot, 'countersign');
  try {
    await promisify(execFile)('go', ['build', '-o', bin, './cmd/countersign'], { cwd: REPO_ROOT, maxBuffer: 16 << 20 });
  } catch (err) {
    throw new Error(`go build ./cmd/countersign failed in ${REPO_ROOT}:\n${err.stderr || err.message}`);
  }
  return bin;
}

function parseEnvFile(text) {
  const out = {};
  for (const line of text.split(/\r?\n/)) {
    const s = line.trim();
    if (!s || s.startsWith('#')) continue;
    const eq = s.indexOf('=');
    if (eq < 0) continue;
    let k = s.slice(0, eq).trim();
    if (k.startsWith('export ')) k = k.slice(7).trim();
    let v = s.slice(eq + 1).trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    out[k] = v;
  }
  return out;
}

export async function startServer() {
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'countersign-compat-'));
  dataDir = path.join(tmpRoot, 'data');
  fs.mkdirSync(dataDir);
  serverLogPath = path.join(tmpRoot, 'server.log');
  const bin = await buildServer();
  const port = await freePort();
  const listen = `127.0.0.1:${port}`;
  const log = fs.openSync(serverLogPath, 'a');
  server = spawn(bin, ['serve', '--data-dir', dataDir, '--listen', listen], {
    cwd: tmpRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env },
  });
  for (const stream of [server.stdout, server.stderr]) {
    stream.on('data', (chunk) => {
      fs.writeSync(log, chunk);
      if (process.env.COMPAT_SERVER_LOG) process.stderr.write(chunk);
    });
  }
  serverExit = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  let exited = null;
  serverExit.then((e) => (exited = e));

  // Wait for GET /healthz -> {"status":"ok"}.
  const deadline = Date.now() + 60_000;
  const healthUrl = `http://${listen}/healthz`;
  let last = 'no answer yet';
  for (;;) {
    if (exited) throw new Error(`countersign exited early (${JSON.stringify(exited)}); log:\n${tailLog()}`);
    if (Date.now() > deadline) throw new Error(`GET ${healthUrl} did not answer {"status":"ok"} within 60s (last: ${last}); log:\n${tailLog()}`);
    try {
      const res = await fetch(healthUrl, { signal: AbortSignal.timeout(2_000) });
      const text = await res.text();
      last = `${res.status} ${clip(text, 200)}`;
      if (res.status === 200 && JSON.parse(text)?.status === 'ok') break;
    } catch (err) {
      last = err.cause?.code ?? err.name ?? err.message;
    }
    await sleep(200);
  }

  // bootstrap.env may be written just after the listener comes up; give it a moment.
  const envPath = path.join(dataDir, 'bootstrap.env');
  while (!fs.existsSync(envPath)) {
    if (Date.now() > deadline) throw new Error(`${envPath} was not written; data dir has: ${fs.readdirSync(dataDir).join(', ')}; log:\n${tailLog()}`);
    await sleep(200);
  }
  const env = parseEnvFile(fs.readFileSync(envPath, 'utf8'));
  for (const k of ['DFNS_API_URL', 'DFNS_AUTH_TOKEN', 'DFNS_CRED_ID', 'DFNS_PRIVATE_KEY_FILE'])
    assert.ok(env[k], `bootstrap.env lacks ${k}; it has: ${Object.keys(env).join(', ')}`);
  baseUrl = env.DFNS_API_URL;
  const keyFile = path.isAbsolute(env.DFNS_PRIVATE_KEY_FILE) ? env.DFNS_PRIVATE_KEY_FILE : path.resolve(dataDir, env.DFNS_PRIVATE_KEY_FILE);
  const privateKey = fs.readFileSync(keyFile, 'utf8');
  assert.match(privateKey, /-----BEGIN PRIVATE KEY-----/, `${keyFile} must be a PKCS#8 PEM ("BEGIN PRIVATE KEY")`);
  crypto.createPrivateKey(privateKey); // throws if Node cannot use it, as the key signer would
  admin = {
    token: env.DFNS_AUTH_TOKEN,
    credId: env.DFNS_CRED_ID,
    privateKey,
    client: client(env.DFNS_AUTH_TOKEN, env.DFNS_CRED_ID, privateKey),
  };
}

export async function stopServer() {
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 5_000);
    await serverExit;
    clearTimeout(timer);
  }
  if (anyFailure) process.stderr.write(`\n---- countersign server log (tail, ${serverLogPath}) ----\n${tailLog(80)}\n----\n`);
  if (tmpRoot) {
    if (process.env.COMPAT_KEEP_DATA) process.stderr.write(`kept ${tmpRoot}\n`);
    else fs.rmSync(tmpRoot, { recursive: true, force: true });
  }
}

// The collected shapeIssue() problems grouped by problem, so one missing field does not drown the rest.
export function shapeIssueSummary() {
  const groups = new Map();
  for (const issue of shapeIssues) {
    const i = issue.indexOf(': ');
    const [where, problem] = [issue.slice(0, i), issue.slice(i + 2)];
    if (!groups.has(problem)) groups.set(problem, []);
    groups.get(problem).push(where);
  }
  const summary = [...groups].map(
    ([problem, wheres]) => `${problem} (in ${wheres.length} response object(s), e.g. ${wheres.slice(0, 3).join('; ')})`,
  );
  return { summary, count: shapeIssues.length };
}

// ---------------------------------------------------------------------------------------------------------------
// EVM tools: hex, RLP, keccak-256, secp256k1 (verify and recover), EIP-55 addresses, EIP-191 and EIP-712 digests.
// Small and slow on purpose (BigInt), enough to check a handful of signatures; selfTestEvmTools() checks them
// against known vectors and node:crypto before a test relies on them.
// ---------------------------------------------------------------------------------------------------------------
export const hexToBytes = (h) => {
  const s = h.startsWith('0x') || h.startsWith('0X') ? h.slice(2) : h;
  assert.ok(/^([0-9a-fA-F]{2})*$/.test(s), `not an even-length hex string: ${clip(h, 80)}`);
  return Buffer.from(s, 'hex');
};
export const bytesToHex = (b) => `0x${Buffer.from(b).toString('hex')}`;
export const bigToBytes = (n) => {
  n = BigInt(n);
  assert.ok(n >= 0n, 'negative integers have no RLP encoding');
  if (n === 0n) return Buffer.alloc(0);
  let h = n.toString(16);
  if (h.length % 2) h = `0${h}`;
  return Buffer.from(h, 'hex');
};
const bytesToBig = (b) => (b.length === 0 ? 0n : BigInt(`0x${Buffer.from(b).toString('hex')}`));
const big32 = (n) => Buffer.from(BigInt(n).toString(16).padStart(64, '0'), 'hex');

// RLP (Ethereum yellow paper, appendix B). Items are Buffers (byte strings) or arrays (lists); integers are given as
// bigint/number and encoded big-endian without leading zeros (0 is the empty string).
export function rlpEncode(item) {
  const len = (n, offset) => {
    if (n < 56) return Buffer.from([offset + n]);
    const l = bigToBytes(n);
    return Buffer.concat([Buffer.from([offset + 55 + l.length]), l]);
  };
  if (Array.isArray(item)) {
    const body = Buffer.concat(item.map(rlpEncode));
    return Buffer.concat([len(body.length, 0xc0), body]);
  }
  const b = typeof item === 'bigint' || typeof item === 'number' ? bigToBytes(item) : Buffer.from(item);
  if (b.length === 1 && b[0] < 0x80) return b;
  return Buffer.concat([len(b.length, 0x80), b]);
}
// Decodes one RLP item that must span all of buf; byte strings come back as Buffers, lists as arrays.
export function rlpDecode(buf) {
  const read = (i) => {
    const p = buf[i];
    assert.ok(p !== undefined, 'RLP: truncated');
    const span = (hdr, n) => {
      assert.ok(i + hdr + n <= buf.length, 'RLP: truncated');
      return [i + hdr, i + hdr + n];
    };
    const longLen = (k) => Number(bytesToBig(buf.subarray(i + 1, i + 1 + k)));
    if (p < 0x80) return [buf.subarray(i, i + 1), i + 1];
    if (p <= 0xb7) {
      const [s, e] = span(1, p - 0x80);
      return [buf.subarray(s, e), e];
    }
    if (p <= 0xbf) {
      const [s, e] = span(1 + p - 0xb7, longLen(p - 0xb7));
      return [buf.subarray(s, e), e];
    }
    const [s, e] = p <= 0xf7 ? span(1, p - 0xc0) : span(1 + p - 0xf7, longLen(p - 0xf7));
    const out = [];
    for (let j = s; j < e; ) {
      const [it, next] = read(j);
      out.push(it);
      j = next;
    }
    assert.ok(out.length >= 0, 'RLP');
    return [out, e];
  };
  const [item, end] = read(0);
  assert.equal(end, buf.length, 'RLP: trailing bytes after the item');
  return item;
}

// Keccak-f[1600] on 25 BigInt lanes; keccak256 is the pre-standard padding (0x01) Ethereum uses, sha3_256 (0x06)
// exists only so the permutation can be checked against node:crypto.
const KECCAK_RC = [
  0x0000000000000001n, 0x0000000000008082n, 0x800000000000808an, 0x8000000080008000n, 0x000000000000808bn,
  0x0000000080000001n, 0x8000000080008081n, 0x8000000000008009n, 0x000000000000008an, 0x0000000000000088n,
  0x0000000080008009n, 0x000000008000000an, 0x000000008000808bn, 0x800000000000008bn, 0x8000000000008089n,
  0x8000000000008003n, 0x8000000000008002n, 0x8000000000000080n, 0x000000000000800an, 0x800000008000000an,
  0x8000000080008081n, 0x8000000000008080n, 0x0000000080000001n, 0x8000000080008008n,
];
const KECCAK_ROT = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14];
const M64 = (1n << 64n) - 1n;
const rotl64 = (x, n) => (n === 0 ? x : ((x << BigInt(n)) | (x >> BigInt(64 - n))) & M64);
function keccakF(st) {
  const C = new Array(5);
  const B = new Array(25);
  for (let round = 0; round < 24; round++) {
    for (let x = 0; x < 5; x++) C[x] = st[x] ^ st[x + 5] ^ st[x + 10] ^ st[x + 15] ^ st[x + 20];
    for (let x = 0; x < 5; x++) {
      const D = C[(x + 4) % 5] ^ rotl64(C[(x + 1) % 5], 1);
      for (let y = 0; y < 25; y += 5) st[x + y] ^= D;
    }
    for (let x = 0; x < 5; x++)
      for (let y = 0; y < 5; y++) B[y + 5 * ((2 * x + 3 * y) % 5)] = rotl64(st[x + 5 * y], KECCAK_ROT[x + 5 * y]);
    for (let x = 0; x < 5; x++)
      for (let y = 0; y < 25; y += 5) st[x + y] = B[x + y] ^ (~B[((x + 1) % 5) + y] & M64 & B[((x + 2) % 5) + y]);
    st[0] ^= KECCAK_RC[round];
  }
}
function sponge256(data, padByte) {
  const rate = 136;
  const msg = Buffer.from(data);
  const padded = Buffer.alloc(Math.floor(msg.length / rate) * rate + rate);
  msg.copy(padded);
  padded[msg.length] ^= padByte;
  padded[padded.length - 1] ^= 0x80;
  const st = new Array(25).fill(0n);
  for (let off = 0; off < padded.length; off += rate) {
    for (let i = 0; i < rate / 8; i++) st[i] ^= padded.readBigUInt64LE(off + 8 * i);
    keccakF(st);
  }
  const out = Buffer.alloc(32);
  for (let i = 0; i < 4; i++) out.writeBigUInt64LE(st[i], 8 * i);
  return out;
}
export const keccak256 = (data) => sponge256(data, 0x01);
const sha3_256 = (data) => sponge256(data, 0x06);

// secp256k1 (SEC 2 §2.4.1), affine coordinates, null is the point at infinity.
const SECP_P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;
export const SECP_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const SECP_G = [
  0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n,
  0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n,
];
const mod = (a, m) => ((a % m) + m) % m;
function modInv(a, m) {
  let [r0, r1, t0, t1] = [mod(a, m), m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [t0, t1] = [t1, t0 - q * t1];
  }
  assert.equal(r0, 1n, 'not invertible');
  return mod(t0, m);
}
function modPow(b, e, m) {
  let r = 1n;
  b = mod(b, m);
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}
function ptAdd(P, Q) {
  if (!P) return Q;
  if (!Q) return P;
  const [x1, y1] = P;
  const [x2, y2] = Q;
  let l;
  if (x1 === x2) {
    if (mod(y1 + y2, SECP_P) === 0n) return null;
    l = mod(3n * x1 * x1 * modInv(2n * y1, SECP_P), SECP_P);
  } else {
    l = mod((y2 - y1) * modInv(x2 - x1, SECP_P), SECP_P);
  }
  const x3 = mod(l * l - x1 - x2, SECP_P);
  return [x3, mod(l * (x1 - x3) - y1, SECP_P)];
}
function ptMul(k, P) {
  let R = null;
  for (let A = P; k > 0n; k >>= 1n, A = ptAdd(A, A)) if (k & 1n) R = ptAdd(R, A);
  return R;
}
function liftX(x, odd) {
  assert.ok(x > 0n && x < SECP_P, 'x out of range');
  const y2 = mod(x * x * x + 7n, SECP_P);
  let y = modPow(y2, (SECP_P + 1n) / 4n, SECP_P);
  assert.equal((y * y) % SECP_P, y2, 'x is not on secp256k1');
  if ((y & 1n) !== BigInt(odd ? 1 : 0)) y = SECP_P - y;
  return [x, y];
}
// A 33-byte compressed or 65-byte uncompressed public key as a point.
export function secpPoint(pub) {
  const b = Buffer.from(pub);
  if (b.length === 33 && (b[0] === 2 || b[0] === 3)) return liftX(bytesToBig(b.subarray(1)), b[0] === 3);
  assert.ok(b.length === 65 && b[0] === 4, `not a SEC1 secp256k1 public key: ${bytesToHex(b)}`);
  const P = [bytesToBig(b.subarray(1, 33)), bytesToBig(b.subarray(33))];
  assert.equal(mod(P[1] * P[1] - P[0] ** 3n - 7n, SECP_P), 0n, 'point is not on secp256k1');
  return P;
}
export const compressPoint = ([x, y]) => Buffer.concat([Buffer.from([y & 1n ? 3 : 2]), big32(x)]);
const uncompressed = ([x, y]) => Buffer.concat([Buffer.from([4]), big32(x), big32(y)]);
export function secpVerify(digest, r, s, P) {
  if (r <= 0n || r >= SECP_N || s <= 0n || s >= SECP_N) return false;
  const z = bytesToBig(digest);
  const w = modInv(s, SECP_N);
  const X = ptAdd(ptMul(mod(z * w, SECP_N), SECP_G), ptMul(mod(r * w, SECP_N), P));
  return X !== null && mod(X[0], SECP_N) === r;
}
// The public key (point) that made (r, s) over digest, given recid = parity of R's y (R.x = r; r >= n never
// happens in practice).
export function secpRecover(digest, r, s, recid) {
  const R = liftX(r, recid === 1);
  const z = bytesToBig(digest);
  const rInv = modInv(r, SECP_N);
  return ptAdd(ptMul(mod(s * rInv, SECP_N), R), ptMul(mod(-z * rInv, SECP_N), SECP_G));
}

// EIP-55 address of a secp256k1 point: last 20 bytes of keccak256(X ‖ Y), mixed-case checksum.
export function toChecksumAddress(addr) {
  const lower = addr.toLowerCase().replace(/^0x/, '');
  const h = keccak256(Buffer.from(lower, 'ascii')).toString('hex');
  return `0x${[...lower].map((c, i) => (parseInt(h[i], 16) >= 8 ? c.toUpperCase() : c)).join('')}`;
}
export const addressOf = (P) => toChecksumAddress(keccak256(uncompressed(P).subarray(1)).subarray(12).toString('hex'));

// EIP-191 version 0x45 (personal_sign): keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ message).
export const eip191Digest = (msg) =>
  keccak256(Buffer.concat([Buffer.from(`\x19Ethereum Signed Message:\n${msg.length}`, 'utf8'), Buffer.from(msg)]));

// EIP-712 hashing for the types ethers' signTypedData takes (no EIP712Domain in types: it is derived from the domain
// members present, in the EIP's order). Handles structs, arrays, string/bytes, bytesN, (u)intN, address, bool.
const EIP712_DOMAIN_FIELDS = [
  { name: 'name', type: 'string' },
  { name: 'version', type: 'string' },
  { name: 'chainId', type: 'uint256' },
  { name: 'verifyingContract', type: 'address' },
  { name: 'salt', type: 'bytes32' },
];
export function eip712Digest({ types, domain, message, primaryType }) {
  const all = { ...types };
  if (!all.EIP712Domain) all.EIP712Domain = EIP712_DOMAIN_FIELDS.filter((f) => domain[f.name] !== undefined);
  if (!primaryType) {
    const referenced = new Set(Object.values(types).flatMap((fs) => fs.map((f) => f.type.replace(/\[.*$/, ''))));
    const roots = Object.keys(types).filter((t) => t !== 'EIP712Domain' && !referenced.has(t));
    assert.equal(roots.length, 1, `cannot derive primaryType from ${JSON.stringify(Object.keys(types))}`);
    primaryType = roots[0];
  }
  const deps = (t, found = new Set()) => {
    if (found.has(t) || !all[t]) return found;
    found.add(t);
    for (const f of all[t]) deps(f.type.replace(/\[.*$/, ''), found);
    return found;
  };
  const encodeType = (t) => {
    const [, ...rest] = [...deps(t)];
    return [t, ...rest.sort()].map((n) => `${n}(${all[n].map((f) => `${f.type} ${f.name}`).join(',')})`).join('');
  };
  const typeHash = (t) => keccak256(Buffer.from(encodeType(t), 'utf8'));
  const encodeValue = (type, v) => {
    const arr = /^(.*)\[(\d*)\]$/.exec(type);
    if (arr) return keccak256(Buffer.concat(v.map((e) => encodeValue(arr[1], e))));
    if (all[type]) return hashStruct(type, v);
    if (type === 'string') return keccak256(Buffer.from(v, 'utf8'));
    if (type === 'bytes') return keccak256(hexToBytes(v));
    if (type === 'bool') return big32(v ? 1n : 0n);
    if (type === 'address') return big32(BigInt(v));
    if (/^bytes\d+$/.test(type)) return Buffer.concat([hexToBytes(v), Buffer.alloc(32)]).subarray(0, 32);
    const int = /^(u?)int(\d+)$/.exec(type);
    assert.ok(int, `unsupported EIP-712 type ${type}`);
    return big32(mod(BigInt(v), 1n << 256n));
  };
  const hashStruct = (t, v) => keccak256(Buffer.concat([typeHash(t), ...all[t].map((f) => encodeValue(f.type, v[f.name]))]));
  return keccak256(Buffer.concat([Buffer.from([0x19, 0x01]), hashStruct('EIP712Domain', domain), hashStruct(primaryType, message)]));
}

// Checks the tools above against fixed vectors and node:crypto; throws on any mismatch.
export function selfTestEvmTools() {
  assert.equal(keccak256(Buffer.alloc(0)).toString('hex'), 'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470', 'keccak256("")');
  for (const n of [0, 1, 135, 136, 137, 300]) {
    const m = crypto.randomBytes(n);
    assert.equal(sha3_256(m).toString('hex'), crypto.createHash('sha3-256').update(m).digest('hex'), `sha3-256 of ${n} bytes`);
  }
  // EIP-55 examples from the EIP.
  for (const a of ['0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359', '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB'])
    assert.equal(toChecksumAddress(a.toLowerCase()), a, 'EIP-55');
  // Private key 1 is G; its address is well known.
  assert.equal(addressOf(SECP_G), '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf', 'address of private key 1');
  // EIP-712's own example (Mail, chainId 1) digest.
  const mail = eip712Digest({
    types: {
      Person: [{ name: 'name', type: 'string' }, { name: 'wallet', type: 'address' }],
      Mail: [{ name: 'from', type: 'Person' }, { name: 'to', type: 'Person' }, { name: 'contents', type: 'string' }],
    },
    domain: { name: 'Ether Mail', version: '1', chainId: 1, verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC' },
    message: {
      from: { name: 'Cow', wallet: '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826' },
      to: { name: 'Bob', wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' },
      contents: 'Hello, Bob!',
    },
  });
  assert.equal(mail.toString('hex'), 'be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2', 'EIP-712 Mail example digest');
  // RLP vectors from the Ethereum wiki.
  assert.equal(rlpEncode(Buffer.from('dog')).toString('hex'), '83646f67');
  assert.equal(rlpEncode([Buffer.from('cat'), Buffer.from('dog')]).toString('hex'), 'c88363617483646f67');
  assert.equal(rlpEncode(0).toString('hex'), '80');
  assert.equal(rlpEncode(1024).toString('hex'), '820400');
  assert.equal(rlpEncode([[], [[]], [[], [[]]]]).toString('hex'), 'c7c0c1c0c3c0c1c0');
  assert.equal(rlpEncode(Buffer.alloc(60, 0x61)).toString('hex'), `b83c${'61'.repeat(60)}`);
  assert.deepEqual(rlpDecode(Buffer.from('c88363617483646f67', 'hex')).map(String), ['cat', 'dog']);
  // ECDSA: a node:crypto secp256k1 signature over a SHA-256 digest verifies, and recovers to the key for one recid.
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-65);
  const msg = crypto.randomBytes(40);
  const sig = crypto.sign('sha256', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const digest = crypto.createHash('sha256').update(msg).digest();
  const [r, s] = [bytesToBig(sig.subarray(0, 32)), bytesToBig(sig.subarray(32))];
  const P = secpPoint(pub);
  assert.ok(secpVerify(digest, r, s, P), 'secp256k1 verify of a node:crypto signature');
  assert.ok(!secpVerify(crypto.randomBytes(32), r, s, P), 'secp256k1 verify must fail for another digest');
  assert.deepEqual(secpPoint(compressPoint(P)), P, 'point compression round trip');
  const recovered = [0, 1].map((id) => secpRecover(digest, r, s, id)).filter((Q) => Q && Q[0] === P[0] && Q[1] === P[1]);
  assert.equal(recovered.length, 1, 'exactly one recid recovers the signing key');
}
