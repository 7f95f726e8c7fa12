// postcond.mjs — the post-conditions of ../../../shared/attacks.md, checked
// after every attack: the daemon is alive (GET /health within 2 s), a fixed
// greedy canary gives byte-identical text, no KV block is used and no request
// runs or waits, the daemon's open fds are back to the baseline, and error
// bodies are JSON in the route's dialect without internal detail. Also the
// client helpers the attack tests share: requests over fresh connections
// (node:http, no keep-alive, so that fd counts are exact) and raw sockets.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { startDaemon, builddir } from '../integration/harness.mjs';

export { startDaemon, builddir };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One request on its own connection (Connection: close). body: object
// (sent as JSON), string or Buffer. Resolves {status, headers, text, json}.
export function req(base, method, path, body, headers = {}, { timeout = 30000 } = {}) {
  const u = new URL(base);
  let data;
  if (body === undefined) data = undefined;
  else if (Buffer.isBuffer(body) || typeof body === 'string') data = body;
  else data = JSON.stringify(body);
  const h = { Connection: 'close', ...headers };
  if (data !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type'))
    h['Content-Type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, method, path, headers: h, agent: false, timeout }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    r.on('timeout', () => r.destroy(new Error(`${method} ${path}: no answer in ${timeout} ms`)));
    r.on('error', reject);
    if (data !== undefined) r.write(data);
    r.end();
  });
}

export const post = (base, path, body, headers) => req(base, 'POST', path, body, headers);

// Raw bytes on a socket: writes `chunks` (strings/Buffers, or functions
// called with the socket), collects what comes back until the server closes
// or `timeout` ms pass. Resolves {data (string, latin1), closed}.
export function raw(base, chunks, { timeout = 5000 } = {}) {
  const u = new URL(base);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname);
    const got = [];
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      resolve({ data: Buffer.concat(got).toString('latin1'), closed });
    };
    const t = setTimeout(() => finish(false), timeout);
    s.on('data', (c) => got.push(c));
    s.on('end', () => finish(true));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.on('connect', async () => {
      for (const c of chunks) {
        if (done) return;
        if (typeof c === 'function') await c(s);
        else if (!s.destroyed) s.write(c);
      }
    });
  });
}

export const statusOf = (data) => {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
  return m ? Number(m[1]) : 0;
};

// Internal detail that must never reach a client: file paths, source file
// names, pointers, library names and messages, stack traces.
const LEAK = /(\/(home|tmp|usr|work|proc|etc|var)\/|\b\w+\.(c|h|cc|cpp):\d|\b0x[0-9a-f]{6,}|libmicrohttpd|\bMHD_|cJSON|libpng|libjpeg|\bstb_|Traceback|Segmentation|std::|AddressSanitizer|errno|\(nil\))/i;

// An error answer: the expected status (a number or a list), never a 5xx
// unless expected, JSON in the route's dialect, no internal detail.
export function assertError(res, status, dialect = 'openai') {
  const want = Array.isArray(status) ? status : [status];
  assert.ok(want.includes(res.status), `status ${res.status}, want ${want.join('|')}: ${res.text.slice(0, 300)}`);
  assertErrorBody(res.text, dialect, res.status);
  if (res.status === 429 || res.status === 503)
    assert.match(String(res.headers['retry-after'] ?? ''), /^\d+$/, 'a 429/503 needs an integer Retry-After');
}

export function assertErrorBody(text, dialect, status) {
  let j;
  try { j = JSON.parse(text); } catch { assert.fail(`error body is not JSON: ${text.slice(0, 200)}`); }
  assert.ok(j && typeof j.error === 'object', `no error object: ${text.slice(0, 200)}`);
  assert.equal(typeof j.error.message, 'string');
  if (dialect === 'gemini') {
    if (status) assert.equal(j.error.code, status, text);
    assert.equal(typeof j.error.status, 'string', text);
  } else {
    assert.equal(typeof j.error.type, 'string', text);
  }
  assert.doesNotMatch(text, LEAK, 'error body leaks internal detail');
  return j;
}

export function fdCount(pid) {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSyncSafe(`/proc/${pid}/status`));
  return m ? Number(m[1]) : 0;
}
function readFileSyncSafe(p) {
  try { return readFileSync(p, 'utf8'); } catch { return ''; }
}

export async function metrics(base) {
  const t = (await req(base, 'GET', '/metrics')).text;
  const get = (re) => { const m = re.exec(t); return m ? Number(m[1]) : NaN; };
  return {
    kvUsed: get(/^pollux:kv_blocks\{[^}]*state="used"\} (\S+)$/m),
    running: get(/^pollux:num_requests_running\{[^}]*\} (\S+)$/m),
    waiting: get(/^pollux:num_requests_waiting\{[^}]*\} (\S+)$/m),
    preemptions: get(/^pollux:num_preemptions_total\{[^}]*\} (\S+)$/m),
    promptTokens: get(/^pollux:prompt_tokens_total\{[^}]*\} (\S+)$/m),
    imagesEncoded: get(/^pollux:images_encoded_total\{[^}]*\} (\S+)$/m),
  };
}

const CANARY = { model: 'canary', prompt: 'The canary sings', max_tokens: 12, temperature: 0, ignore_eos: true };

export async function canary(base, headers = {}) {
  const r = await post(base, '/v1/completions', CANARY, headers);
  assert.equal(r.status, 200, 'canary: ' + r.text);
  return r.json.choices[0].text;
}

// Waits up to `ms` for `fn` to return true.
export async function until(fn, ms = 5000, step = 50) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await sleep(step);
  }
}

// A daemon with its baseline. check() asserts every post-condition.
export class Guard {
  static async start(args = [], opts = {}) {
    const g = new Guard();
    g.d = await startDaemon(['--model-id', 'tiny', ...args], opts);
    g.base = g.d.base;
    g.pid = g.d.proc.pid;
    const k = args.indexOf('--api-key');
    g.auth = k >= 0 ? { Authorization: `Bearer ${args[k + 1]}` } : {};
    g.canaryText = await canary(g.base, g.auth);
    await sleep(100);
    g.fds = fdCount(g.pid);
    return g;
  }

  async alive() {
    const t0 = Date.now();
    const r = await req(this.base, 'GET', '/health', undefined, {}, { timeout: 2000 });
    assert.equal(r.status, 200, '/health');
    assert.ok(Date.now() - t0 < 2000, '/health took over 2 s');
  }

  async idle(ms = 8000) {
    let m;
    const ok = await until(async () => {
      m = await metrics(this.base);
      return m.kvUsed === 0 && m.running === 0 && m.waiting === 0;
    }, ms);
    assert.ok(ok, `not back to idle: ${JSON.stringify(m)}`);
  }

  async fdsBack(ms = 8000) {
    let n;
    const ok = await until(() => { n = fdCount(this.pid); return n <= this.fds; }, ms);
    assert.ok(ok, `open fds ${n}, baseline ${this.fds}`);
  }

  async check(what = '') {
    assert.equal(this.d.proc.exitCode, null, `${what}: polluxd exited:\n${this.d.log().slice(-2000)}`);
    await this.alive();
    await this.idle();
    assert.equal(await canary(this.base, this.auth), this.canaryText, `${what}: canary output changed`);
    await this.idle();
    await this.fdsBack();
  }

  // Stops the daemon: it must exit 0 (a sanitizer report makes it fail).
  async stop() {
    const log = this.d.log();
    const { code, sig } = await this.d.stop();
    assert.equal(sig, null, 'polluxd died by a signal:\n' + log.slice(-3000));
    assert.equal(code, 0, 'polluxd should exit 0:\n' + log.slice(-3000));
    assert.doesNotMatch(log, /AddressSanitizer|runtime error:|LeakSanitizer/, 'sanitizer report');
  }
}

// Standard request bodies.
export const chat = (content, extra = {}) => ({ model: 'tiny', max_tokens: 4, temperature: 0, messages: [{ role: 'user', content }], ...extra });
export const completion = (prompt, extra = {}) => ({ model: 'tiny', max_tokens: 4, temperature: 0, prompt, ...extra });
export const gemini = (text, extra = {}) => ({ contents: [{ role: 'user', parts: [{ text }] }], generationConfig: { maxOutputTokens: 4, temperature: 0 }, ...extra });

// A streamed request on its own connection. onData(text so far, req) may
// return true to hang up (destroys the socket). Resolves {status, text,
// hungUp}.
export function stream(base, path, body, { onData, headers = {} } = {}) {
  const u = new URL(base);
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    let text = '', status = 0, hungUp = false, done = false;
    const finish = () => { if (!done) { done = true; resolve({ status, text, hungUp }); } };
    const r = request({ host: u.hostname, port: u.port, method: 'POST', path, agent: false,
      headers: { 'Content-Type': 'application/json', Connection: 'close', ...headers } }, (res) => {
      status = res.statusCode;
      res.setEncoding('utf8');
      res.on('data', (c) => {
        text += c;
        if (onData && !hungUp && onData(text, r)) { hungUp = true; r.destroy(); finish(); }
      });
      res.on('end', finish);
      res.on('error', finish);
      res.on('close', finish);
    });
    r.on('error', (e) => (hungUp || done ? finish() : reject(e)));
    r.end(data);
  });
}

// The data: payloads of an SSE text.
export const sseEvents = (text) => text.split(/\r?\n\r?\n/).filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
