#!/usr/bin/env node
// soak.mjs — a bounded soak test of polluxd: mixed load for --minutes, then
// checks that nothing leaked. Node >= 20, no dependencies (node:http, zlib).
//
// Load (weighted random per request, --clients workers, each one request at
// a time): OpenAI chats streamed and not (random max_tokens, stop strings,
// n > 1, logprobs), /v1/completions, chats with one or two PNG images
// (data: URLs, made here with zlib), Gemini generateContent,
// streamGenerateContent (?alt=sse and the JSON-array form) and countTokens,
// clients that hang up at a random point (before the answer, mid-stream,
// mid-upload, during image decoding), slow readers that pause the socket for
// seconds, and requests over every limit (body size, messages, context,
// max_tokens, n, stop, top_logprobs, images per request and pixels, bad JSON,
// wrong types, unknown routes) that must get their 4xx.
//
// Measured: status counts per request class, 5xx (HTTP and in-stream error
// events, and the server's own 5xx counter), requests that outlive a client
// deadline well above the server's (hung), streams that end without their
// terminator, TTFT p50/p99 of streamed requests, the daemon's RSS and open
// fds every --sample seconds, and after the load has stopped and drained:
// KV blocks in use against the idle value read before the load, fds against
// the start. Exits 1 if a target is missed, 2 on a usage or startup error.
//
//   node bench/soak.mjs --polluxd build/polluxd --model M.gguf [--mmproj P.gguf]
//        [--config FILE] [--minutes 30] [--clients N] [--seed 1] [-- EXTRA POLLUXD ARGS]
//   node bench/soak.mjs --url http://127.0.0.1:8080 --pid PID [--config FILE |
//        --max-running N] [--minutes 30] [--clients N] [--seed 1]
//
// Other options: --sample SEC (10), --warmup SEC (min(180, 10% of the run)),
// --deadline SEC (client deadline; default request_timeout_s + 60),
// --log FILE (polluxd's output when started here), --api-key KEY,
// --json FILE (write the results as JSON), --quiet (no progress lines).
// Started here, polluxd listens on 127.0.0.1 at a free port and is stopped
// (SIGTERM, by PID) at the end; its settings are read with --check-config.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import { performance } from 'node:perf_hooks';

// ---- options ---------------------------------------------------------------

function parseArgs(argv) {
  const o = { extra: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { o.extra = argv.slice(i + 1); break; }
    if (!a.startsWith('--')) usage(`unexpected argument '${a}'`);
    const k = a.slice(2);
    if (k === 'quiet' || k === 'help') { o[k] = true; continue; }
    if (i + 1 >= argv.length) usage(`option ${a} needs a value`);
    o[k] = argv[++i];
  }
  return o;
}

function usage(msg) {
  if (msg) console.error(`soak: ${msg}`);
  console.error('usage: node bench/soak.mjs (--polluxd PATH [--model F] [--mmproj F] [--config F] [-- ARGS]\n' +
    '                         | --url URL --pid PID [--config F | --max-running N])\n' +
    '       [--minutes 30] [--clients N] [--seed 1] [--sample 10] [--warmup SEC] [--deadline SEC]\n' +
    '       [--log FILE] [--api-key KEY] [--json FILE] [--quiet]');
  process.exit(msg ? 2 : 0);
}

const opt = parseArgs(process.argv.slice(2));
if (opt.help) usage();
if (!opt.polluxd && !(opt.url && opt.pid)) usage('give --polluxd PATH, or --url and --pid');
const minutes = Number(opt.minutes ?? 30);
const seed = Number(opt.seed ?? 1) >>> 0;
const sampleS = Number(opt.sample ?? 10);
if (!(minutes > 0) || !(sampleS > 0)) usage('--minutes and --sample must be positive');
const quiet = !!opt.quiet;
const log = (...a) => { if (!quiet) console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...a); };

// ---- settings --------------------------------------------------------------

// polluxd's defaults for the keys the soak needs (server/config.c).
const DEFAULTS = {
  max_body_bytes: 32 << 20, request_timeout_s: 600, header_timeout_s: 30, max_running: 64,
  max_n: 8, max_images: 8, max_image_pixels: 33177600, keepalive_s: 5, drain_timeout_s: 30,
};
// Limits fixed in the code (api/common.c): messages and stop strings.
const MAX_MESSAGES = 4096, MAX_STOP = 4, MAX_TOP_LOGPROBS = 20;

function parseSize(v) {
  const m = /^(\d+)\s*(K|KiB|M|MiB|G|GiB)?$/i.exec(String(v).trim());
  if (!m) return Number(v);
  const mul = { k: 1 << 10, kib: 1 << 10, m: 1 << 20, mib: 1 << 20, g: 1 << 30, gib: 1 << 30 };
  return Number(m[1]) * (m[2] ? mul[m[2].toLowerCase()] : 1);
}

// "key = value" lines (INI, px_config_dump's output or a polluxd.conf).
function parseIni(text) {
  const out = {};
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s;.*$/, '').trim();
    const m = /^([a-z_]+)\s*=\s*(.*)$/.exec(line);
    if (m && !line.startsWith('#') && !line.startsWith(';')) out[m[1]] = m[2];
  }
  return out;
}

function settingsFrom(kv) {
  const s = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS)) if (kv[k] !== undefined && kv[k] !== '') s[k] = parseSize(kv[k]);
  return s;
}

// ---- random ----------------------------------------------------------------

function rng(s) { // mulberry32
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const ri = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1)); // inclusive
const pickOne = (r, a) => a[Math.floor(r() * a.length)];
function pickWeighted(r, table) {
  let total = 0;
  for (const t of table) total += t.w;
  let x = r() * total;
  for (const t of table) if ((x -= t.w) < 0) return t;
  return table[table.length - 1];
}

const WORDS = ('the quick brown fox jumps over lazy dog while seven wizards quietly debate ancient maps ' +
  'river stone garden window paper light music winter summer market bridge engine signal number ' +
  'forest cloud silver orange planet ocean harbor letter ticket coffee morning evening story ' +
  'question answer reason memory pattern circle square yellow purple mountain valley village ' +
  'library teacher student doctor farmer painter kitchen bottle candle mirror pocket jacket').split(' ');
const SYSTEMS = ['You are a terse assistant.', 'You answer in one sentence and never use lists.',
  'You are a helpful assistant that explains things to children, patiently and with examples.'];
const words = (r, n) => Array.from({ length: n }, () => pickOne(r, WORDS)).join(' ');

// ---- PNG images (zlib only) ------------------------------------------------

const CRC = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf) {
  let c = -1;
  for (let i = 0; i < buf.length; i++) c = CRC[(c ^ buf[i]) & 255] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function pngChunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}
// kind: 'gradient' | 'noise' (RGB) | 'blank' (gray, all zero: compresses to
// almost nothing, for the over-the-pixel-limit image).
function makePng(w, h, kind, r) {
  const ch = kind === 'blank' ? 1 : 3, stride = w * ch + 1;
  const raw = Buffer.alloc(stride * h);
  if (kind !== 'blank') {
    for (let y = 0; y < h; y++) {
      let p = y * stride + 1; // filter byte 0 (none) before each row
      for (let x = 0; x < w; x++, p += 3) {
        if (kind === 'noise') {
          raw[p] = r() * 256; raw[p + 1] = r() * 256; raw[p + 2] = r() * 256;
        } else {
          raw[p] = (x * 255) / w; raw[p + 1] = (y * 255) / h; raw[p + 2] = (x + y) & 255;
        }
      }
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = ch === 1 ? 0 : 2; // colour type: gray or RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))]);
}

// ---- HTTP ------------------------------------------------------------------

let host = '127.0.0.1', port = 0, basePath = '';
let agent; // keep-alive pool of the load; destroyed before the final fd count
const oneShot = () => new http.Agent({ keepAlive: false });
const inflight = new Set();

// One request. spec: method, path, body (string/Buffer), headers, mode
// ('whole' | 'sse'), deadlineMs, abortAfterEvents, abortAfterMs,
// slow {pauses, lo, hi} (stop reading the response `pauses` times, for
// lo..hi ms each), fresh (own connection), upload: 'expect' | 'cl-only' |
// 'chunked' | 'partial' (special body sending), r (rng).
// Resolves (never rejects) with what happened.
function run(spec) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const out = { status: 0, body: '', events: [], ttft: -1, done: false, error: null, hung: false,
      aborted: false, ms: 0 };
    let finished = false, req, slowLeft = spec.slow?.pauses ?? 0, lastResume = 0;
    const timers = [];
    const finish = () => {
      if (finished) return;
      finished = true;
      out.ms = performance.now() - t0;
      for (const t of timers) clearTimeout(t);
      inflight.delete(out);
      resolve(out);
    };
    const abort = () => { out.aborted = true; req.destroy(); finish(); };
    inflight.add(out);
    const headers = { 'content-type': 'application/json', ...(spec.headers ?? {}) };
    if (opt['api-key']) headers.authorization = `Bearer ${opt['api-key']}`;
    let body = spec.body === undefined ? null : Buffer.from(spec.body);
    if (spec.upload === 'expect' || spec.upload === 'cl-only' || spec.upload === 'partial')
      headers['content-length'] = spec.contentLength;
    else if (body && spec.upload !== 'chunked') headers['content-length'] = body.length;
    if (spec.upload === 'expect') headers.expect = '100-continue';
    req = http.request({ host, port, method: spec.method ?? 'POST', path: basePath + spec.path, headers,
      agent: spec.fresh || spec.upload ? oneShot() : agent });
    timers.push(setTimeout(() => { out.hung = true; req.destroy(); finish(); }, spec.deadlineMs));
    if (spec.abortAfterMs !== undefined) timers.push(setTimeout(abort, spec.abortAfterMs));
    req.on('error', (e) => { out.error ??= e.code || e.message; finish(); });
    req.on('response', (res) => {
      out.status = res.statusCode;
      res.setEncoding('utf8');
      const sse = spec.mode === 'sse' && res.statusCode === 200;
      let buf = '';
      res.on('data', (d) => {
        if (finished) return;
        if (!sse) {
          if (out.body.length < 8 << 20) out.body += d;
          if (spec.abortAfterEvents !== undefined) abort(); // hang up on the first bytes
        } else {
          buf += d;
          let m;
          while ((m = /\r?\n\r?\n/.exec(buf))) {
            const ev = buf.slice(0, m.index);
            buf = buf.slice(m.index + m[0].length);
            if (!ev.startsWith('data:')) continue; // ": ping" comments
            if (out.ttft < 0) out.ttft = performance.now() - t0;
            out.events.push(ev.slice(5).trim());
            if (spec.abortAfterEvents !== undefined && out.events.length >= spec.abortAfterEvents) return abort();
          }
          out.rest = buf;
        }
        // A slow reader stops reading a few times, for seconds each (the
        // kernel's buffers fill, then the server's write side blocks).
        if (spec.slow && slowLeft > 0 && performance.now() - lastResume > 500 && spec.r() < 0.5) {
          slowLeft--;
          res.pause();
          timers.push(setTimeout(() => { lastResume = performance.now(); res.resume(); }, ri(spec.r, spec.slow.lo, spec.slow.hi)));
        }
      });
      res.on('end', () => { out.done = true; if (spec.upload) req.destroy(); finish(); });
      res.on('close', () => { if (!out.done) out.error ??= 'closed mid-response'; finish(); });
    });
    // The body.
    if (spec.upload === 'expect') {
      req.on('continue', () => req.end(body));
      req.flushHeaders();
    } else if (spec.upload === 'partial') {
      req.write(body.subarray(0, Math.floor(body.length / 2)));
      timers.push(setTimeout(abort, spec.abortUploadMs));
    } else if (spec.upload === 'cl-only' || spec.upload === 'chunked') {
      // Stream spec.total bytes of filler without waiting for the answer.
      const chunk = Buffer.alloc(64 << 10, 0x20);
      let sent = 0;
      const pump = () => {
        while (!finished && sent < spec.total) {
          const n = Math.min(chunk.length, spec.total - sent);
          sent += n;
          if (!req.write(chunk.subarray(0, n))) return req.once('drain', pump);
        }
        if (!finished) req.end();
      };
      pump();
    } else {
      req.end(body ?? undefined);
    }
  });
}

// ---- the daemon ------------------------------------------------------------

let child = null, childExit = null, pid = 0;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function getText(path) {
  const r = await run({ method: 'GET', path, mode: 'whole', deadlineMs: 10000, fresh: true });
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status || r.error}`);
  return r.body;
}

async function metrics() {
  const m = {};
  for (const line of (await getText('/metrics')).split('\n')) {
    const x = /^pollux:(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!x) continue;
    const extra = (x[2] ?? '').split(',').filter((l) => !l.startsWith('model_name=')).join(',');
    m[x[1] + (extra ? `{${extra}}` : '')] = Number(x[3]);
  }
  return m;
}

function procStats() {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(st) ?? [0, 0])[1]);
  return { rss: kb('VmRSS'), rssAnon: kb('RssAnon'), fds: fs.readdirSync(`/proc/${pid}/fd`).length };
}

function alive() {
  if (child) return childExit === null;
  try { return fs.existsSync(`/proc/${pid}/status`); } catch { return false; }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startDaemon() {
  port = await freePort();
  const base = [];
  if (opt.config) base.push('--config', opt.config);
  if (opt.model) base.push('--model', opt.model);
  if (opt.mmproj) base.push('--mmproj', opt.mmproj);
  base.push(...opt.extra, '--host', '127.0.0.1', '--port', String(port));
  const dump = execFileSync(opt.polluxd, [...base, '--check-config'], { encoding: 'utf8' });
  const settings = settingsFrom(parseIni(dump));
  const logFile = opt.log ?? `/tmp/soak-polluxd-${process.pid}.log`;
  const fd = fs.openSync(logFile, 'a');
  child = spawn(opt.polluxd, base, { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  pid = child.pid;
  child.on('exit', (code, sig) => { childExit = { code, sig }; });
  log(`started polluxd pid ${pid} on 127.0.0.1:${port} (log ${logFile})`);
  for (let i = 0; i < 600; i++) { // the model load: up to 60 s
    if (!alive()) throw new Error(`polluxd exited at startup (${JSON.stringify(childExit)}); see ${logFile}`);
    const r = await run({ method: 'GET', path: '/ready', mode: 'whole', deadlineMs: 2000, fresh: true });
    if (r.status === 200) return settings;
    await sleep(100);
  }
  throw new Error('polluxd not ready after 60 s');
}

async function stopDaemon(drainS) {
  if (!child || childExit) return childExit;
  child.kill('SIGTERM');
  for (let i = 0; i < (drainS + 15) * 10 && !childExit; i++) await sleep(100);
  if (!childExit) { child.kill('SIGKILL'); await sleep(500); return { code: null, sig: 'SIGKILL (did not stop)' }; }
  return childExit;
}

// ---- results ---------------------------------------------------------------

const stats = {
  byClass: new Map(), // class -> Map(outcome -> count)
  fivexx: 0, hung: [], truncated: [], unexpected: [], ttft: [], requests: 0, aborts: 0,
};
function count(cls, outcome) {
  if (!stats.byClass.has(cls)) stats.byClass.set(cls, new Map());
  const m = stats.byClass.get(cls);
  m.set(outcome, (m.get(outcome) ?? 0) + 1);
}
function note(list, cls, r, what) {
  if (list.length < 20) list.push(`${cls}: ${what} (status ${r.status}, ${r.error ?? ''} ${(r.body || r.events.slice(-1)[0] || '').slice(0, 160)})`);
  else list.push(null);
}
// HTTP status of an error object in a stream (OpenAI has only a type).
function streamErrorStatus(j) {
  const e = j?.error;
  if (!e) return 0;
  if (typeof e.code === 'number') return e.code;
  return { server_error: 500, unavailable_error: 503, timeout_error: 504, rate_limit_error: 429 }[e.type] ?? 400;
}

// Records a request that should succeed (200; 429 when the queue or the
// image decoders are full is allowed). check(r) validates a 200 answer and
// returns an error string or ''.
function recordValid(cls, r, { stream, terminator, check, ttft = true }) {
  stats.requests++;
  if (r.hung) { count(cls, 'hung'); note(stats.hung, cls, r, 'no end before the client deadline'); return; }
  if (!r.status) { count(cls, `no response: ${r.error}`); note(stats.unexpected, cls, r, 'no response'); return; }
  if (r.status >= 500) stats.fivexx++;
  if (r.status !== 200) {
    count(cls, String(r.status));
    if (r.status !== 429) note(stats.unexpected, cls, r, `status ${r.status}`);
    return;
  }
  if (stream) {
    for (const ev of r.events) {
      if (!ev.startsWith('{"error"')) continue;
      const code = streamErrorStatus(JSON.parse(ev));
      count(cls, `200+stream error ${code}`);
      if (code >= 500) stats.fivexx++;
      if (code !== 429) note(stats.unexpected, cls, r, `error event ${code}`);
      return;
    }
    if (!r.done || !terminator(r)) {
      count(cls, '200 truncated');
      note(stats.truncated, cls, r, r.done ? 'ended without its terminator' : `cut: ${r.error}`);
      return;
    }
    if (ttft && r.ttft >= 0) stats.ttft.push(r.ttft);
  }
  const bad = check ? check(r) : '';
  if (bad) { count(cls, '200 bad body'); note(stats.unexpected, cls, r, bad); return; }
  count(cls, '200');
}

// Records a request that must be refused with one of `expect` (numbers, or
// 'RST' when the server may close instead of answering).
function recordRefused(cls, r, expect) {
  stats.requests++;
  if (r.hung) { count(cls, 'hung'); note(stats.hung, cls, r, 'no answer before the client deadline'); return; }
  const got = r.status || (['ECONNRESET', 'EPIPE', 'closed mid-response'].includes(r.error) ? 'RST' : `error ${r.error}`);
  if (r.status >= 500) stats.fivexx++;
  count(cls, String(got));
  if (!expect.includes(got)) note(stats.unexpected, cls, r, `expected ${expect.join('|')}`);
}

function recordAbort(cls, r) {
  stats.requests++;
  stats.aborts++;
  if (r.hung) { count(cls, 'hung'); note(stats.hung, cls, r, 'no end before the client deadline'); return; }
  if (r.status >= 500) { stats.fivexx++; note(stats.unexpected, cls, r, `status ${r.status}`); }
  count(cls, r.aborted ? `hung up (${r.status ? 'after ' + r.status : 'before answer'})` : `finished first: ${r.status || r.error}`);
}

const pct = (v, q) => {
  if (!v.length) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))];
};
const median = (v) => pct(v, 0.5);

// ---- the mix ---------------------------------------------------------------

let S; // settings
let modelId = 'model', nCtx = 2048, nVocab = 1024, vision = false;
const tokenId = (r) => ri(r, Math.min(300, nVocab >> 2), nVocab - 1);
let images = [], overPixelsPng = null, deadlineMs = 0;

const oaiDone = (r) => r.events[r.events.length - 1] === '[DONE]';
const geminiDone = (r) => {
  const last = r.events[r.events.length - 1];
  try { return !!JSON.parse(last).candidates?.every((c) => c.finishReason); } catch { return false; }
};
const dataUrl = (png) => `data:image/png;base64,${png.b64}`;
function pickImages(r, n) {
  const out = [];
  let budget = S.max_body_bytes / 2;
  for (let i = 0; i < n; i++) {
    if (r() < 0.4) { // a new image now and then, so the tower runs (the pool's embeddings are cached)
      const w = ri(r, 16, 400), h = ri(r, 16, 400);
      const im = { w, h, b64: makePng(w, h, r() < 0.5 ? 'noise' : 'gradient', r).toString('base64') };
      if (im.b64.length < budget) { budget -= im.b64.length; out.push(im); continue; }
    }
    const fit = images.filter((im) => im.b64.length < budget);
    if (!fit.length) break;
    const im = pickOne(r, fit);
    budget -= im.b64.length;
    out.push(im);
  }
  return out;
}

function sampling(r, o) {
  if (r() < 0.3) o.temperature = 0;
  else if (r() < 0.5) { o.temperature = Math.round(r() * 150) / 100; o.top_p = 0.9; }
  if (r() < 0.2) o.top_k = ri(r, 1, 40);
  if (r() < 0.3) o.seed = ri(r, 0, 1e6);
  return o;
}
const maxTokens = (r) => 1 + Math.floor(r() ** 2 * 200);
function stops(r) {
  return r() < 0.25 ? Array.from({ length: ri(r, 1, MAX_STOP) }, () => pickOne(r, ['e', '\n', ' the', '.', pickOne(r, WORDS)])) : undefined;
}

function chatBody(r, { stream, nImages = 0, big = false }) {
  const msgs = [];
  if (r() < 0.5) msgs.push({ role: 'system', content: pickOne(r, SYSTEMS) });
  const turns = r() < 0.2 ? ri(r, 2, 4) : 1;
  for (let t = 0; t < turns; t++) {
    const text = words(r, ri(r, 2, Math.floor(60 / turns)));
    if (t === turns - 1 && nImages) {
      const parts = [{ type: 'text', text }];
      for (const im of pickImages(r, nImages)) parts.push({ type: 'image_url', image_url: { url: dataUrl(im) } });
      msgs.push({ role: 'user', content: parts });
    } else {
      msgs.push({ role: 'user', content: text });
    }
    if (t < turns - 1) msgs.push({ role: 'assistant', content: words(r, ri(r, 1, 10)) });
  }
  const b = sampling(r, { model: modelId, messages: msgs, max_tokens: maxTokens(r) });
  if (stream) { b.stream = true; if (r() < 0.5) b.stream_options = { include_usage: true }; }
  const st = stops(r);
  if (st) b.stop = st;
  if (big) { b.n = ri(r, 2, Math.min(4, S.max_n)); b.logprobs = true; b.top_logprobs = MAX_TOP_LOGPROBS; b.max_tokens = ri(r, 60, 200); }
  else {
    if (r() < 0.15) b.n = ri(r, 2, Math.min(4, S.max_n));
    if (r() < 0.2) { b.logprobs = true; b.top_logprobs = ri(r, 0, 5); }
  }
  return b;
}

function checkChat(b) {
  return (r) => {
    const j = JSON.parse(r.body);
    if (!Array.isArray(j.choices) || j.choices.length !== (b.n ?? 1)) return `choices: want ${b.n ?? 1}`;
    if (!j.usage) return 'no usage';
    return '';
  };
}
function checkStreamChoices(b) {
  return (r) => {
    const seen = new Set();
    for (const ev of r.events) {
      if (ev === '[DONE]') continue;
      for (const c of JSON.parse(ev).choices ?? []) if (c.finish_reason) seen.add(c.index);
    }
    return seen.size === (b.n ?? 1) ? '' : `finish_reason for ${seen.size} of ${b.n ?? 1} choices`;
  };
}

function geminiBody(r, nImages = 0) {
  const parts = [{ text: words(r, ri(r, 2, 60)) }];
  for (const im of pickImages(r, nImages)) parts.push(r() < 0.5 ? { inlineData: { mimeType: 'image/png', data: im.b64 } } : { inline_data: { mime_type: 'image/png', data: im.b64 } });
  const b = { contents: [{ role: 'user', parts }] };
  if (r() < 0.3) b.systemInstruction = { parts: [{ text: pickOne(r, SYSTEMS) }] };
  const gc = { maxOutputTokens: maxTokens(r) };
  if (r() < 0.5) gc.temperature = Math.round(r() * 100) / 100;
  if (r() < 0.15) gc.candidateCount = ri(r, 2, Math.min(3, S.max_n));
  const st = stops(r);
  if (st) gc.stopSequences = st;
  b.generationConfig = gc;
  return b;
}
const gpath = (m) => `/v1beta/models/${encodeURIComponent(modelId)}:${m}`;

// Valid traffic.
const VALID = [
  { name: 'chat stream', w: 18, go: async (r) => {
    const b = chatBody(r, { stream: true });
    const res = await run({ path: '/v1/chat/completions', body: JSON.stringify(b), mode: 'sse', deadlineMs });
    recordValid('chat stream', res, { stream: true, terminator: oaiDone, check: checkStreamChoices(b) });
  } },
  { name: 'chat', w: 10, go: async (r) => {
    const b = chatBody(r, { stream: false });
    const res = await run({ path: '/v1/chat/completions', body: JSON.stringify(b), mode: 'whole', deadlineMs });
    recordValid('chat', res, { check: checkChat(b) });
  } },
  { name: 'completion', w: 10, go: async (r) => {
    const stream = r() < 0.5;
    const b = sampling(r, { model: modelId, max_tokens: maxTokens(r), stream,
      prompt: r() < 0.3 ? Array.from({ length: ri(r, 1, 200) }, () => tokenId(r)) : words(r, ri(r, 1, 80)) });
    if (r() < 0.2) b.logprobs = ri(r, 0, 5);
    if (r() < 0.1) b.echo = true;
    if (r() < 0.1) b.n = 2;
    const st = stops(r);
    if (st) b.stop = st;
    const res = await run({ path: '/v1/completions', body: JSON.stringify(b), mode: stream ? 'sse' : 'whole', deadlineMs });
    recordValid(stream ? 'completion stream' : 'completion', res, { stream, terminator: oaiDone, check: stream ? checkStreamChoices(b) : checkChat(b) });
  } },
  { name: 'chat image', w: 8, vision: true, go: async (r) => {
    const stream = r() < 0.6;
    const b = chatBody(r, { stream, nImages: ri(r, 1, 2) });
    const res = await run({ path: '/v1/chat/completions', body: JSON.stringify(b), mode: stream ? 'sse' : 'whole', deadlineMs });
    recordValid(stream ? 'image chat stream' : 'image chat', res, { stream, terminator: oaiDone, check: stream ? checkStreamChoices(b) : checkChat(b) });
  } },
  { name: 'gemini generate', w: 5, go: async (r) => {
    const b = geminiBody(r, vision && r() < 0.3 ? 1 : 0);
    const res = await run({ path: gpath('generateContent'), body: JSON.stringify(b), mode: 'whole', deadlineMs });
    recordValid('gemini generate', res, { check: (x) => (JSON.parse(x.body).candidates?.length === (b.generationConfig.candidateCount ?? 1) ? '' : 'candidates') });
  } },
  { name: 'gemini stream sse', w: 5, go: async (r) => {
    const b = geminiBody(r, vision && r() < 0.2 ? 1 : 0);
    const res = await run({ path: gpath('streamGenerateContent') + '?alt=sse', body: JSON.stringify(b), mode: 'sse', deadlineMs });
    recordValid('gemini stream sse', res, { stream: true, terminator: geminiDone });
  } },
  { name: 'gemini stream array', w: 2, go: async (r) => {
    const b = geminiBody(r);
    const res = await run({ path: gpath('streamGenerateContent'), body: JSON.stringify(b), mode: 'whole', deadlineMs });
    recordValid('gemini stream array', res, { check: (x) => {
      const a = JSON.parse(x.body);
      return Array.isArray(a) && a.length && a[a.length - 1].candidates?.every((c) => c.finishReason) ? '' : 'array without a finished last element';
    } });
  } },
  { name: 'gemini countTokens', w: 4, go: async (r) => {
    const b = r() < 0.5 ? { contents: geminiBody(r, vision && r() < 0.3 ? 1 : 0).contents } : { generateContentRequest: { model: `models/${modelId}`, ...geminiBody(r) } };
    const res = await run({ path: gpath('countTokens'), body: JSON.stringify(b), mode: 'whole', deadlineMs });
    recordValid('gemini countTokens', res, { check: (x) => (JSON.parse(x.body).totalTokens > 0 ? '' : 'totalTokens') });
  } },
  { name: 'misc', w: 3, go: async (r) => {
    const k = ri(r, 0, 4);
    const spec = [
      { method: 'GET', path: '/v1/models' }, { method: 'GET', path: '/health' },
      { path: '/tokenize', body: JSON.stringify({ content: words(r, ri(r, 1, 40)), with_pieces: r() < 0.5 }) },
      { path: '/detokenize', body: JSON.stringify({ tokens: Array.from({ length: ri(r, 1, 50) }, () => ri(r, 0, nVocab - 1)) }) },
      { method: 'GET', path: `/v1beta/models/${encodeURIComponent(modelId)}` },
    ][k];
    const res = await run({ ...spec, mode: 'whole', deadlineMs: 30000 });
    recordValid('misc', res, {});
  } },
];

// Hang-ups: the client goes away at a random point.
const ABORTS = [
  { name: 'abort mid-stream', w: 4, go: async (r) => {
    const gem = r() < 0.3;
    const b = gem ? geminiBody(r) : chatBody(r, { stream: true });
    if (!gem) b.max_tokens = ri(r, 50, 300); else b.generationConfig.maxOutputTokens = ri(r, 50, 300);
    const res = await run({ path: gem ? gpath('streamGenerateContent') + '?alt=sse' : '/v1/chat/completions', body: JSON.stringify(b),
      mode: 'sse', deadlineMs, abortAfterEvents: ri(r, 1, 30) });
    recordAbort('abort mid-stream', res);
  } },
  { name: 'abort early', w: 2, go: async (r) => {
    const stream = r() < 0.5;
    const b = chatBody(r, { stream });
    const res = await run({ path: '/v1/chat/completions', body: JSON.stringify(b), mode: stream ? 'sse' : 'whole',
      deadlineMs, abortAfterMs: ri(r, 0, 300) });
    recordAbort('abort before answer', res);
  } },
  { name: 'abort image', w: 1, vision: true, go: async (r) => {
    const b = chatBody(r, { stream: r() < 0.5, nImages: 2 });
    const res = await run({ path: '/v1/chat/completions', body: JSON.stringify(b), mode: b.stream ? 'sse' : 'whole',
      deadlineMs, abortAfterMs: ri(r, 1, 80) });
    recordAbort('abort image chat', res);
  } },
  { name: 'abort upload', w: 1, go: async (r) => {
    const body = JSON.stringify(chatBody(r, { stream: true }));
    const res = await run({ path: '/v1/chat/completions', body, contentLength: Buffer.byteLength(body), upload: 'partial',
      mode: 'whole', deadlineMs, abortUploadMs: ri(r, 0, 500) });
    recordAbort('abort mid-upload', res);
  } },
];

// Slow readers: big streams (n choices, 20 top logprobs) read with pauses.
const SLOW = { name: 'slow reader', w: 5, go: async (r) => {
  const b = chatBody(r, { stream: true, big: r() < 0.6 });
  const hi = Math.max(1000, Math.min(8000, (S.header_timeout_s * 1000) / 3));
  const res = await run({ path: '/v1/chat/completions', body: JSON.stringify(b), mode: 'sse', deadlineMs, r,
    slow: { pauses: ri(r, 2, 5), lo: 500, hi } });
  recordValid('slow reader', res, { stream: true, terminator: oaiDone, check: checkStreamChoices(b), ttft: false });
} };

// Requests over a limit, each with the status it must get.
function overLimit() {
  const chat = (extra) => JSON.stringify({ model: modelId, messages: [{ role: 'user', content: 'hi' }], ...extra });
  const tiny = () => images.length ? images[0] : null;
  const L = [
    { name: 'body over max (Expect: 100-continue)', expect: [413], spec: () => ({ path: '/v1/chat/completions', body: '', upload: 'expect', contentLength: S.max_body_bytes + 1 }) },
    // Without Expect the client is still sending when the 413 goes out and
    // the connection closes: the client may see a reset instead.
    { name: 'body over max (Content-Length)', expect: [413, 'RST'], spec: () => ({ path: '/v1/chat/completions', upload: 'cl-only', contentLength: S.max_body_bytes + 1, total: S.max_body_bytes + 1 }) },
    { name: 'body over max (chunked)', expect: [413, 'RST'], spec: () => ({ path: '/v1/chat/completions', upload: 'chunked', total: S.max_body_bytes + (64 << 10) }) },
    { name: 'too many messages', expect: [400], spec: () => ({ path: '/v1/chat/completions', body: JSON.stringify({ model: modelId, messages: Array.from({ length: MAX_MESSAGES + 1 }, () => ({ role: 'user', content: 'a' })) }) }) },
    { name: 'prompt over context (chat)', expect: [400], spec: (r) => ({ path: '/v1/chat/completions', body: chat({ messages: [{ role: 'user', content: words(r, nCtx + 64) }] }) }) },
    { name: 'prompt over context (token ids)', expect: [400], spec: (r) => ({ path: '/v1/completions', body: JSON.stringify({ model: modelId, prompt: Array.from({ length: nCtx + 8 }, () => tokenId(r)), stream: r() < 0.5 }) }) },
    { name: 'prompt over context (gemini)', expect: [400], spec: (r) => ({ path: gpath(r() < 0.5 ? 'generateContent' : 'streamGenerateContent') + '?alt=sse', body: JSON.stringify({ contents: [{ parts: [{ text: words(r, nCtx + 64) }] }] }) }) },
    { name: 'max_tokens over context', expect: [400], spec: (r) => ({ path: '/v1/chat/completions', body: chat({ max_tokens: nCtx + ri(r, 0, 10), stream: r() < 0.5 }) }) },
    { name: 'max_tokens huge', expect: [400], spec: () => ({ path: '/v1/completions', body: JSON.stringify({ model: modelId, prompt: 'x', max_tokens: 2 ** 31 }) }) },
    { name: 'maxOutputTokens over context', expect: [400], spec: () => ({ path: gpath('generateContent'), body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: nCtx } }) }) },
    { name: 'n over max_n', expect: [400], spec: () => ({ path: '/v1/chat/completions', body: chat({ n: S.max_n + 1 }) }) },
    { name: 'candidateCount over max_n', expect: [400], spec: () => ({ path: gpath('generateContent'), body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { candidateCount: S.max_n + 1 } }) }) },
    { name: 'too many stop strings', expect: [400], spec: () => ({ path: '/v1/chat/completions', body: chat({ stop: ['a', 'b', 'c', 'd', 'e'] }) }) },
    { name: 'top_logprobs over 20', expect: [400], spec: () => ({ path: '/v1/chat/completions', body: chat({ logprobs: true, top_logprobs: MAX_TOP_LOGPROBS + 1 }) }) },
    { name: 'bad JSON', expect: [400], spec: (r) => ({ path: pickOne(r, ['/v1/chat/completions', '/v1/completions', gpath('generateContent')]),
      body: pickOne(r, ['{', '{"model":', 'null', '[]', '{"model":"m",}', '\u00ff\u00fe', '{"messages":[{"role":"user","content":"a"}]', '']) }) },
    { name: 'wrong types', expect: [400], spec: (r) => ({ path: '/v1/chat/completions', body: chat(pickOne(r, [
      { max_tokens: 'ten' }, { messages: 'hello' }, { temperature: 'hot' }, { stream: 1 }, { n: 1.5 }, { stop: 7 },
      { messages: [{ role: 'user', content: 5 }] }, { messages: [{ role: 'wizard', content: 'a' }] }, { top_p: 3 }, { seed: 'x' }, { logprobs: 'yes' }])) }) },
    { name: 'gemini wrong types', expect: [400], spec: (r) => ({ path: gpath('generateContent'), body: JSON.stringify(pickOne(r, [
      { contents: 'hi' }, { contents: [{ parts: 'hi' }] }, { contents: [] }, { contents: [{ parts: [{ text: 1 }] }] },
      { contents: [{ parts: [{ text: 'a' }] }], generationConfig: { temperature: 'x' } }])) }) },
    { name: 'unknown route / method / model', expect: [404, 405], spec: (r) => pickOne(r, [
      { path: '/v1/nothing', body: '{}' }, { method: 'GET', path: '/v1/chat/completions' },
      { path: gpath('embedContent'), body: '{}' }, { path: '/v1beta/models/not-this-model:generateContent', body: '{"contents":[{"parts":[{"text":"a"}]}]}' }]) },
  ];
  if (vision) {
    L.push(
      { name: 'image over max_image_pixels', expect: [400, 413], spec: () => ({ path: '/v1/chat/completions', body: chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: dataUrl(overPixelsPng) } }] }] }) }) },
      { name: 'images over max_images', expect: [400], spec: () => ({ path: '/v1/chat/completions', body: chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }, ...Array.from({ length: S.max_images + 1 }, () => ({ type: 'image_url', image_url: { url: dataUrl(tiny()) } }))] }] }) }) },
      { name: 'broken image', expect: [400], spec: (r) => {
        const png = Buffer.from(tiny().b64, 'base64');
        const url = pickOne(r, ['data:image/png;base64,!!notbase64!!', `data:image/png;base64,${png.subarray(0, png.length >> 1).toString('base64')}`,
          'data:image/png;base64,', 'http://127.0.0.1:1/x.png', `data:image/png;base64,${Buffer.from('GIF89a not really').toString('base64')}`]);
        return { path: '/v1/chat/completions', body: chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] }) };
      } },
    );
  }
  return L;
}
let OVER = [];
const OVER_ENTRY = { name: 'over a limit', w: 12, go: async (r) => {
  const t = pickOne(r, OVER);
  const spec = t.spec(r);
  const res = await run({ mode: 'whole', deadlineMs: 60000, ...spec });
  recordRefused(`limit: ${t.name}`, res, t.expect);
} };

// ---- the run ---------------------------------------------------------------

async function main() {
  if (opt.polluxd) {
    S = await startDaemon();
  } else {
    const u = new URL(opt.url);
    host = u.hostname; port = Number(u.port || 80); basePath = u.pathname.replace(/\/$/, '');
    pid = Number(opt.pid);
    if (!alive()) throw new Error(`no process ${pid}`);
    if (!opt.config && !opt['max-running'] && !opt.clients) usage('attached: give --config FILE or --max-running N (or --clients N)');
    S = settingsFrom(opt.config ? parseIni(fs.readFileSync(opt.config, 'utf8')) : {});
  }
  if (opt['max-running']) S.max_running = Number(opt['max-running']);
  const clients = Number(opt.clients ?? 2 * S.max_running);
  deadlineMs = 1000 * Number(opt.deadline ?? S.request_timeout_s + 60);
  agent = new http.Agent({ keepAlive: true, maxSockets: clients + 8 });

  const models = JSON.parse(await getText('/v1/models'));
  const m0 = models.data?.[0] ?? {};
  modelId = m0.id ?? modelId;
  nCtx = m0.meta?.n_ctx_train ?? nCtx;
  nVocab = m0.meta?.n_vocab ?? nVocab;
  vision = !!m0.architecture?.input_modalities?.includes('image');

  const ir = rng(seed ^ 0x9e3779b9);
  const shapes = [[16, 16, 'noise'], [64, 48, 'gradient'], [224, 224, 'gradient'], [224, 224, 'noise'], [320, 240, 'gradient'], [500, 375, 'noise'], [640, 480, 'gradient'], [97, 311, 'noise']];
  images = shapes.map(([w, h, k]) => ({ w, h, b64: makePng(w, h, k, ir).toString('base64') }));
  const side = Math.ceil(Math.sqrt(S.max_image_pixels + 1));
  overPixelsPng = { w: side, h: side, b64: makePng(side, side, 'blank', ir).toString('base64') };
  OVER = overLimit();

  const durMs = minutes * 60000;
  const warmMs = 1000 * Number(opt.warmup ?? Math.min(180, 0.1 * minutes * 60));
  const winMs = Math.min(60000, 0.1 * durMs);
  log(`model ${modelId}, context ${nCtx}, vision ${vision}; max_running ${S.max_running}, ${clients} clients, ` +
    `${minutes} min, warm-up ${warmMs / 1000} s, client deadline ${deadlineMs / 1000} s, seed ${seed}`);

  // Idle state before the load.
  // (/proc first: the /metrics request's own connection is not counted.)
  await sleep(1000);
  const p0 = procStats(), m0m = await metrics();
  const idle = { ...p0, kvUsed: m0m['kv_blocks{state="used"}'], m: m0m };
  log(`idle: RSS ${(idle.rss / 1024).toFixed(1)} MiB, ${idle.fds} fds, KV blocks used ${idle.kvUsed}`);

  const t0 = performance.now(), tEnd = t0 + durMs;
  const samples = [];
  let crashed = null, sampling = true;
  const sampleOnce = async (phase) => {
    if (!alive()) { crashed ??= childExit ? JSON.stringify(childExit) : 'process gone'; return; }
    const p = procStats();
    let mm = {};
    try { mm = await metrics(); } catch { /* counted by the load itself */ }
    const s = { t: (performance.now() - t0) / 1000, phase, ...p, kvUsed: mm['kv_blocks{state="used"}'],
      running: mm.num_requests_running, waiting: mm.num_requests_waiting, conns: mm.http_connections };
    samples.push(s);
    log(`${phase.padEnd(5)} t=${s.t.toFixed(0).padStart(5)}s RSS ${(s.rss / 1024).toFixed(1)} MiB fds ${s.fds} ` +
      `kv used ${s.kvUsed} running ${s.running} waiting ${s.waiting} conns ${s.conns} | requests ${stats.requests} 5xx ${stats.fivexx} hung ${stats.hung.length}`);
  };
  const sampler = (async () => {
    while (sampling) {
      await sampleOnce(performance.now() < tEnd ? 'load' : 'drain');
      await sleep(sampleS * 1000);
    }
  })();
  // A hard stop in case something in here hangs anyway.
  const watchdog = setTimeout(() => { console.error('soak: watchdog: the run did not end; giving up'); process.exit(3); },
    durMs + 2 * deadlineMs + 180000);
  watchdog.unref();

  const table = [...VALID.filter((k) => vision || !k.vision), ...ABORTS.filter((k) => vision || !k.vision), SLOW, OVER_ENTRY];
  const worker = async (i) => {
    const r = rng((seed * 7919 + i * 104729) >>> 0);
    while (performance.now() < tEnd && !crashed) {
      const k = pickWeighted(r, table);
      try { await k.go(r); } catch (e) { count(`soak error (${k.name})`, String(e.message).slice(0, 80)); stats.unexpected.push(`${k.name}: ${e.stack}`); }
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, i) => worker(i)));
  const tLoadEnd = performance.now();
  log(`load stopped after ${((tLoadEnd - t0) / 1000).toFixed(0)} s; draining`);

  // Drain: the server's queue and running set back to 0.
  let drained = null;
  for (let i = 0; i < 600 && alive(); i++) {
    const mm = await metrics().catch(() => null);
    if (mm && mm.num_requests_running === 0 && mm.num_requests_waiting === 0) { drained = mm; break; }
    await sleep(100);
  }
  agent.destroy();
  // The server closes its side when it sees our FIN; then count fds.
  let fin = alive() ? procStats() : null;
  for (let i = 0; i < 150 && fin && fin.fds > idle.fds; i++) { await sleep(100); fin = alive() ? procStats() : null; }
  await sleep(1000);
  fin = alive() ? procStats() : null;
  const endM = alive() ? await metrics().catch(() => null) : null;
  sampling = false;
  await sampler;
  const exit = await stopDaemon(S.drain_timeout_s);
  clearTimeout(watchdog);

  // ---- report ----
  const load = samples.filter((s) => s.phase === 'load');
  const warmS = warmMs / 1000, endS = durMs / 1000, winS = winMs / 1000;
  const span = Math.max(winS, sampleS);
  const warmWin = load.filter((s) => s.t >= warmS && s.t <= warmS + span);
  const endWin = samples.filter((s) => s.t >= endS - span && s.t <= endS + 1);
  const rssWarm = median((warmWin.length ? warmWin : load.slice(1, 2)).map((s) => s.rss));
  const rssEnd = median((endWin.length ? endWin : load.slice(-1)).map((s) => s.rss));
  const rssMax = Math.max(...samples.map((s) => s.rss));
  const growth = (rssEnd - rssWarm) / rssWarm;
  const d = (k) => (endM?.[k] ?? NaN) - (idle.m[k] ?? 0);
  const srv5xx = d('http_responses_total{code="5xx"}');
  const kvEnd = endM?.['kv_blocks{state="used"}'];
  const mib = (kb) => `${(kb / 1024).toFixed(1)} MiB`;

  console.log('\n== requests by class and outcome ==');
  const classes = [...stats.byClass.keys()].sort();
  const w = Math.max(...classes.map((c) => c.length), 10);
  for (const c of classes) {
    const m = stats.byClass.get(c);
    const tot = [...m.values()].reduce((a, b) => a + b, 0);
    console.log(`${c.padEnd(w)} ${String(tot).padStart(6)}  ${[...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  }
  const statusTotals = new Map();
  for (const m of stats.byClass.values()) for (const [k, v] of m) statusTotals.set(k, (statusTotals.get(k) ?? 0) + v);
  console.log(`${'all'.padEnd(w)} ${String(stats.requests).padStart(6)}  ${[...statusTotals].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join(', ')}`);

  const tt = stats.ttft;
  console.log('\n== daemon ==');
  console.log(`RSS: idle ${mib(idle.rss)}, after warm-up ${mib(rssWarm)} (median of ${warmWin.length} samples from ${warmS.toFixed(0)} s), ` +
    `end of load ${mib(rssEnd)} (median of the last ${endWin.length}), max ${mib(rssMax)}, after drain ${fin ? mib(fin.rss) : '-'}`);
  console.log(`fds: start ${idle.fds}, max ${Math.max(...samples.map((s) => s.fds))}, end ${fin?.fds ?? '-'}`);
  console.log(`KV blocks used: idle ${idle.kvUsed}, after drain ${kvEnd ?? '-'} (cached ${endM?.['kv_blocks{state="cached"}'] ?? '-'}, free ${endM?.['kv_blocks{state="free"}'] ?? '-'})`);
  console.log(`server counters over the run: requests ${d('http_requests_total')}, 2xx ${d('http_responses_total{code="2xx"}')}, ` +
    `4xx ${d('http_responses_total{code="4xx"}')}, 5xx ${srv5xx}, client disconnects ${d('client_disconnects_total')} ` +
    `(hang-up requests ${stats.aborts}), preemptions ${d('num_preemptions_total')}, finished stop/length/abort/error ` +
    `${d('request_success_total{finished_reason="stop"}')}/${d('request_success_total{finished_reason="length"}')}/` +
    `${d('request_success_total{finished_reason="abort"}')}/${d('request_success_total{finished_reason="error"}')}, ` +
    `generated tokens ${d('generation_tokens_total')}, images encoded ${d('images_encoded_total')}, queue-full 429 ${d('http_rejected_queue_full_total')}`);
  console.log(`TTFT of ${tt.length} streamed requests (client side, request sent -> first data event): ` +
    `p50 ${(pct(tt, 0.5) / 1000).toFixed(3)} s, p99 ${(pct(tt, 0.99) / 1000).toFixed(3)} s`);
  console.log(`polluxd exit: ${exit ? JSON.stringify(exit) : 'attached (not stopped)'}`);

  const targets = [
    ['RSS growth after warm-up < 5%', `${(growth * 100).toFixed(2)}%`, growth < 0.05],
    ['KV blocks leaked (used after drain - idle)', `${(kvEnd ?? NaN) - idle.kvUsed}`, kvEnd === idle.kvUsed],
    ['fds leaked (end - start)', `${fin ? fin.fds - idle.fds : 'daemon gone'}`, !!fin && fin.fds <= idle.fds],
    ['5xx (client-seen incl. stream error events)', `${stats.fivexx}`, stats.fivexx === 0],
    ['5xx (server counter)', `${srv5xx}`, srv5xx === 0],
    ['hung requests / streams', `${stats.hung.length}`, stats.hung.length === 0],
    ['streams cut without terminator', `${stats.truncated.length}`, stats.truncated.length === 0],
    ['server drained (running = waiting = 0)', drained ? 'yes' : 'no', !!drained],
    ['unexpected statuses / bodies', `${stats.unexpected.length}`, stats.unexpected.length === 0],
    ['daemon alive throughout', crashed ?? 'yes', !crashed],
  ];
  if (exit) targets.push(['clean exit on SIGTERM', JSON.stringify(exit), exit.code === 0]);
  console.log('\n== targets ==');
  for (const [name, v, ok] of targets) console.log(`${ok ? 'PASS' : 'FAIL'}  ${name.padEnd(46)} ${v}`);
  for (const [title, list] of [['hung', stats.hung], ['cut streams', stats.truncated], ['unexpected', stats.unexpected]]) {
    const shown = list.filter(Boolean);
    if (shown.length) console.log(`\n${title} (${list.length}; first ${shown.length}):\n  ${shown.join('\n  ')}`);
  }
  if (opt.json) {
    fs.writeFileSync(opt.json, JSON.stringify({ settings: S, clients, minutes, seed, idle: { rss: idle.rss, fds: idle.fds, kvUsed: idle.kvUsed },
      rssWarm, rssEnd, rssMax, growth, fin, kvEnd, srv5xx, ttft: { n: tt.length, p50: pct(tt, 0.5), p99: pct(tt, 0.99) },
      byClass: Object.fromEntries([...stats.byClass].map(([k, m]) => [k, Object.fromEntries(m)])), samples,
      targets: targets.map(([name, v, ok]) => ({ name, value: v, ok })), hung: stats.hung, truncated: stats.truncated, unexpected: stats.unexpected }, null, 1));
  }
  return targets.every((t) => t[2]) ? 0 : 1;
}

main().then((code) => process.exit(code), async (e) => {
  console.error(`soak: ${e.stack ?? e}`);
  if (child && !childExit) await stopDaemon(5);
  process.exit(2);
});
