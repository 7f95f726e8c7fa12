// images.test.mjs — images through /v1/chat/completions: PNG and JPEG data
// URLs (fetch and curl), streamed answers, the image rows in the usage, a
// repeated image served from the caches, and every kind of bad image
// refused with a 400 while another stream runs undisturbed.
// Run by check-daemon.sh (node --test).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, builddir } from './harness.mjs';

const ROWS = 4; // the tiny tower: 56x56 image, 4x4 patches pooled 2x2
let d, plain, tmp;

function image(kind, w, h, seed) {
  return execFileSync(join(builddir, 'tests/integration/mkimage'), [kind, String(w), String(h), String(seed)]);
}
const dataUrl = (mime, buf) => `data:${mime};base64,${buf.toString('base64')}`;
const PNG = image('png', 48, 32, 1);
const JPEG = image('jpeg', 40, 30, 2);

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'pximg-'));
  const mm = join(tmp, 'mm.gguf');
  execFileSync(join(builddir, 'tools/pollux-mkmodel'), ['--mmproj-only', '--type', 'F16', '-o', mm]);
  d = await startDaemon(['--mmproj', mm, '--max-images', '3', '--max-image-pixels', '100000',
    '--kv-cache-mb', '16']);
  plain = await startDaemon([]);
});

after(async () => {
  for (const x of [d, plain]) {
    const res = await x.stop();
    assert.equal(res.code, 0, 'polluxd should exit 0 on SIGTERM:\n' + x.log());
  }
  rmSync(tmp, { recursive: true, force: true });
});

const json = { 'Content-Type': 'application/json' };

function chat(parts, extra = {}) {
  return { model: 'tiny', max_tokens: 8, temperature: 0, messages: [{ role: 'user', content: parts }], ...extra };
}
const img = (url) => ({ type: 'image_url', image_url: { url } });
const txt = (text) => ({ type: 'text', text });

async function post(base, body) {
  const r = await fetch(base + '/v1/chat/completions', { method: 'POST', headers: json, body: JSON.stringify(body) });
  const text = await r.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = undefined; }
  return { status: r.status, text, json: parsed };
}

function parseSse(text) {
  assert.match(text, /data: \[DONE\]\n\n$/);
  return text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
}

async function metric(base, name) {
  const t = await (await fetch(base + '/metrics')).text();
  const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'm').exec(t);
  return m ? Number(m[2]) : NaN;
}

test('a PNG and a JPEG in one message: streamed answer, image rows in the usage', async () => {
  const textOnly = await post(d.base, chat([txt('Describe:'), txt('and compare.')]));
  assert.equal(textOnly.status, 200, textOnly.text);
  const body = chat([txt('Describe:'), img(dataUrl('image/png', PNG)), txt('and compare.'),
    img(dataUrl('image/jpeg', JPEG))], { stream: true, stream_options: { include_usage: true } });
  const r = await fetch(d.base + '/v1/chat/completions', { method: 'POST', headers: json, body: JSON.stringify(body) });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/event-stream/);
  const chunks = parseSse(await r.text());
  const content = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].delta.content ?? '').join('');
  assert.ok(content.length > 0, 'no text streamed');
  const last = chunks.filter((c) => c.choices.length).at(-1);
  assert.equal(last.choices[0].finish_reason, 'length');
  const usage = chunks.at(-1).usage;
  // Each image adds <start_of_image>, its rows and <end_of_image>.
  assert.equal(usage.prompt_tokens, textOnly.json.usage.prompt_tokens + 2 * (ROWS + 2));
  assert.equal(usage.completion_tokens, 8);
});

test('the same image again is neither encoded nor computed again', async () => {
  const body = chat([img(dataUrl('image/png', image('png', 30, 30, 7))), txt('What is in this picture, in detail?')]);
  const before = await metric(d.base, 'pollux:images_encoded_total');
  const a = await post(d.base, body);
  const b = await post(d.base, body);
  assert.equal(a.status, 200, a.text);
  assert.equal(b.status, 200, b.text);
  assert.equal(b.json.choices[0].message.content, a.json.choices[0].message.content);
  assert.equal(await metric(d.base, 'pollux:images_encoded_total'), before + 1);
  assert.ok(b.json.usage.prompt_tokens_details.cached_tokens >= 16, JSON.stringify(b.json.usage));
  // A different image behind the same text gives another encoding.
  const c = await post(d.base, chat([img(dataUrl('image/png', image('png', 30, 30, 8))),
    txt('What is in this picture, in detail?')]));
  assert.equal(c.status, 200, c.text);
  assert.equal(await metric(d.base, 'pollux:images_encoded_total'), before + 2);
});

test('curl sends a PNG and a JPEG and reads the stream', async () => {
  const f = join(tmp, 'body.json');
  writeFileSync(f, JSON.stringify(chat([txt('Look:'), img(dataUrl('image/png', PNG)), txt('and'),
    img(dataUrl('image/jpeg', JPEG))], { stream: true })));
  const out = await new Promise((resolve, reject) => execFile('curl', ['-sS', '-N', '--fail-with-body',
    '-H', 'Content-Type: application/json', '--data-binary', '@' + f, d.base + '/v1/chat/completions'],
  (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))));
  const chunks = parseSse(out);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
});

test('bad images get a 400 naming the problem; a running stream is not disturbed', async () => {
  // A long stream runs throughout.
  const streamBody = { model: 'tiny', prompt: 'Once upon a time', max_tokens: 200, temperature: 0, ignore_eos: true, stream: true };
  const running = fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: JSON.stringify(streamBody) })
    .then((r) => r.text());
  const truncated = PNG.subarray(0, PNG.length - 40);
  const corrupt = Buffer.from(PNG);
  corrupt.fill(0x5a, 60, 120);
  const cases = [
    [img('data:image/png;base64,!!!notbase64'), /base64/i],
    [img(dataUrl('image/png', truncated)), /truncated|corrupt|invalid|decode/i],
    [img(dataUrl('image/png', corrupt)), /corrupt|invalid|decode|truncated/i],
    [img(dataUrl('image/jpeg', PNG)), /png|jpeg|mime|type/i],
    [img(dataUrl('image/png', Buffer.from('hello, world'))), /image|format|recogni/i],
    [img(dataUrl('text/plain', Buffer.from('hello'))), /type|mime|support/i],
    [img(dataUrl('image/png', image('png', 400, 300, 3))), /pixels|large|limit/i],
    [img('https://169.254.169.254/latest/meta-data/'), /remote image/i],
    [img('file:///etc/passwd'), /data: URL|data URL|url/i],
  ];
  for (const [part, want] of cases) {
    const r = await post(d.base, chat([txt('x'), part]));
    assert.equal(r.status, 400, `${JSON.stringify(part).slice(0, 80)}: ${r.text}`);
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.match(r.json.error.message, want);
    assert.match(r.json.error.param, /^messages\[0\]\.content\[1\]/);
    assert.doesNotMatch(r.json.error.message, /\/tmp|\.c:|0x[0-9a-f]{8}/);
  }
  // A 0x0 PNG header.
  const zero = Buffer.from(PNG);
  zero.writeUInt32BE(0, 16);
  zero.writeUInt32BE(0, 20);
  let r = await post(d.base, chat([img(dataUrl('image/png', zero))]));
  assert.equal(r.status, 400, r.text);
  // More images than max_images (3).
  r = await post(d.base, chat([1, 2, 3, 4].map(() => img(dataUrl('image/png', PNG)))));
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error.message, /at most 3 images/);
  // A model without a vision tower.
  r = await post(plain.base, chat([txt('x'), img(dataUrl('image/png', PNG))]));
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error.message, /does not take images/);
  // The stream finished whole.
  const text = await running;
  const chunks = parseSse(text);
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  assert.equal(chunks.filter((c) => c.choices[0].text !== undefined).length >= 1, true);
  // Nothing left behind.
  const end = Date.now() + 5000;
  while ((await metric(d.base, 'pollux:num_requests_running')) !== 0) {
    assert.ok(Date.now() < end, 'requests still running');
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.equal((await fetch(d.base + '/health')).status, 200);
});
