// daemon.test.mjs — polluxd end to end over HTTP: a real daemon on a free
// 127.0.0.1 port serving a tiny generated model, driven with fetch.
// Run by check-daemon.sh (node --test). PX_TEST_DAEMON=host:port points the
// tests at a daemon started by hand instead.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startDaemon } from './harness.mjs';

const KEY = 'sk-test-key';
let base, d;

before(async () => {
  d = await startDaemon(['--api-key', KEY, '--max-body-bytes', '65536', '--kv-cache-mb', '16',
    '--max-waiting', '64', '--keepalive-s', '1']);
  base = d.base;
});

after(async () => {
  const res = await d.stop();
  assert.equal(res.code, 0, 'polluxd should exit 0 on SIGTERM:\n' + d.log());
});

const auth = { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' };

async function post(path, body, headers = auth) {
  const r = await fetch(base + path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, text, json };
}

async function metrics() {
  const t = await (await fetch(base + '/metrics')).text();
  // Value of the first sample named `name` whose labels include `labels`.
  const get = (name, labels = {}) => {
    for (const l of t.split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(l);
      if (!m || m[1] !== name) continue;
      const have = Object.fromEntries([...(m[3] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
    }
    return NaN;
  };
  return { text: t, get };
}

// Reads an SSE response into its data payloads.
async function sse(res) {
  const dec = new TextDecoder();
  let buf = '';
  const events = [];
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of block.split('\n'))
        if (line.startsWith('data: ')) events.push(line.slice(6));
    }
  }
  return events;
}

test('health, ready and models', async () => {
  assert.equal((await fetch(base + '/health')).status, 200);
  assert.equal((await fetch(base + '/ready')).status, 200);
  const r = await fetch(base + '/v1/models', { headers: auth });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.equal(j.object, 'list');
  assert.equal(j.data.length, 1);
  assert.equal(j.data[0].object, 'model');
  assert.match(j.data[0].id, /tiny-gemma3/);
});

test('chat completion, not streamed', async () => {
  const r = await post('/v1/chat/completions', {
    model: 'tiny', messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8,
    temperature: 0, ignore_eos: true,
  });
  assert.equal(r.status, 200, r.text);
  const j = r.json;
  assert.match(j.id, /^chatcmpl-/);
  assert.equal(j.object, 'chat.completion');
  assert.equal(j.model, 'tiny');
  assert.equal(typeof j.created, 'number');
  assert.equal(j.choices.length, 1);
  assert.equal(j.choices[0].message.role, 'assistant');
  assert.equal(typeof j.choices[0].message.content, 'string');
  assert.equal(j.choices[0].finish_reason, 'length');
  assert.equal(j.usage.completion_tokens, 8);
  assert.ok(j.usage.prompt_tokens > 3);
  assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + 8);
});

test('chat completion, streamed: role first, content, finish, [DONE]; usage only when asked', async () => {
  for (const includeUsage of [false, true]) {
    const res = await fetch(base + '/v1/chat/completions', {
      method: 'POST', headers: auth,
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6,
        temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: includeUsage } }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const ev = await sse(res);
    assert.equal(ev.at(-1), '[DONE]');
    const chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    assert.equal(withChoices[0].choices[0].delta.role, 'assistant');
    assert.ok(withChoices.every((c) => c.object === 'chat.completion.chunk'));
    assert.ok(chunks.every((c) => c.id === chunks[0].id));
    const last = withChoices.at(-1);
    assert.equal(last.choices[0].finish_reason, 'length');
    const usage = chunks.filter((c) => c.choices.length === 0);
    if (includeUsage) {
      assert.equal(usage.length, 1);
      assert.equal(usage[0].usage.completion_tokens, 6);
      assert.ok(withChoices.every((c) => c.usage === null));
    } else {
      assert.equal(usage.length, 0);
      assert.ok(withChoices.every((c) => !('usage' in c)));
    }
  }
});

test('streamed text equals the non-streamed text (greedy)', async () => {
  const body = { model: 'tiny', messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 20, temperature: 0, ignore_eos: true };
  const whole = (await post('/v1/chat/completions', body)).json.choices[0].message.content;
  const res = await fetch(base + '/v1/chat/completions', { method: 'POST', headers: auth, body: JSON.stringify({ ...body, stream: true }) });
  const ev = await sse(res);
  const text = ev.slice(0, -1).map((e) => JSON.parse(e)).map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, whole);
});

test('completions, n choices, seeds and stop strings', async () => {
  const r = await post('/v1/completions', { model: 'tiny', prompt: 'The cat', max_tokens: 10, n: 3, temperature: 1, seed: 7, ignore_eos: true });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, 'text_completion');
  assert.equal(r.json.choices.length, 3);
  assert.deepEqual(r.json.choices.map((c) => c.index), [0, 1, 2]);
  const again = await post('/v1/completions', { model: 'tiny', prompt: 'The cat', max_tokens: 10, n: 3, temperature: 1, seed: 7, ignore_eos: true });
  assert.deepEqual(again.json.choices.map((c) => c.text), r.json.choices.map((c) => c.text));
  // A stop string taken from a greedy continuation cuts it there.
  const g = await post('/v1/completions', { model: 'tiny', prompt: 'Hello world', max_tokens: 30, temperature: 0, ignore_eos: true });
  const text = g.json.choices[0].text;
  assert.ok(text.length > 8, 'continuation too short for the test');
  const stop = text.slice(4, 7);
  const s = await post('/v1/completions', { model: 'tiny', prompt: 'Hello world', max_tokens: 30, temperature: 0, ignore_eos: true, stop: [stop] });
  assert.equal(s.json.choices[0].text, text.slice(0, text.indexOf(stop)));
  assert.equal(s.json.choices[0].finish_reason, 'stop');
});

test('logprobs in chat responses', async () => {
  const r = await post('/v1/chat/completions', { model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 3 });
  assert.equal(r.status, 200, r.text);
  const lp = r.json.choices[0].logprobs.content;
  assert.equal(lp.length, 4);
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    // Greedy: the chosen token is the most likely one.
    assert.equal(t.top_logprobs[0].logprob, t.logprob);
  }
});

test('completions echo with logprobs scores the prompt (evaluation harnesses)', async () => {
  const tok = await post('/tokenize', { content: 'The quick brown fox', add_special: true });
  assert.equal(tok.status, 200, tok.text);
  const n = tok.json.tokens.length;
  const r = await post('/v1/completions', { model: 'tiny', prompt: 'The quick brown fox', max_tokens: 1, temperature: 0, echo: true, logprobs: 2, ignore_eos: true });
  assert.equal(r.status, 200, r.text);
  const c = r.json.choices[0];
  assert.ok(c.text.startsWith('The quick brown fox'));
  const lp = c.logprobs;
  assert.equal(lp.tokens.length, n + 1);
  assert.equal(lp.token_logprobs[0], null);
  assert.equal(lp.top_logprobs[0], null);
  for (let i = 1; i < n + 1; i++) {
    assert.ok(lp.token_logprobs[i] <= 0);
    assert.ok(Object.keys(lp.top_logprobs[i]).length >= 1);
  }
  // Offsets index the text.
  for (let i = 0; i < lp.tokens.length; i++)
    assert.equal([...c.text].slice(lp.text_offset[i], lp.text_offset[i] + [...lp.tokens[i]].length).join(''), lp.tokens[i]);
  // Same numbers whatever the generation length.
  const r2 = await post('/v1/completions', { model: 'tiny', prompt: 'The quick brown fox', max_tokens: 3, temperature: 0, echo: true, logprobs: 2, ignore_eos: true });
  assert.deepEqual(r2.json.choices[0].logprobs.token_logprobs.slice(0, n), lp.token_logprobs.slice(0, n));
});

test('errors: auth, JSON, routes, methods, body size, context', async () => {
  let r = await post('/v1/chat/completions', { model: 'x', messages: [{ role: 'user', content: 'a' }] }, { 'Content-Type': 'application/json' });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.type, 'authentication_error');
  r = await post('/v1/chat/completions', { model: 'x', messages: [] }, { ...auth, Authorization: 'Bearer wrong' });
  assert.equal(r.status, 401);
  r = await post('/v1/chat/completions', '{"model": "x", "messages": [');
  assert.equal(r.status, 400);
  assert.equal(r.json.error.type, 'invalid_request_error');
  r = await post('/v1/chat/completions', { model: 'x', messages: [{ role: 'wizard', content: 'a' }] });
  assert.equal(r.status, 400);
  assert.match(r.json.error.param, /role/);
  r = await post('/v1/chat/completions', { model: 'x', messages: [{ role: 'user', content: 'a' }], n: 1e9 });
  assert.equal(r.status, 400);
  r = await post('/v1/nothing', {});
  assert.equal(r.status, 404);
  const g = await fetch(base + '/v1/chat/completions', { headers: auth });
  assert.equal(g.status, 405);
  assert.equal(g.headers.get('allow'), 'POST');
  r = await post('/v1/completions', { model: 'x', prompt: 'a'.repeat(70000) });
  assert.equal(r.status, 413);
  r = await post('/v1/completions', { model: 'x', prompt: 'word '.repeat(3000), max_tokens: 4 });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'context_length_exceeded');
  // Still serving after all that.
  assert.equal((await fetch(base + '/health')).status, 200);
});

test('a client that disconnects mid-stream frees its KV blocks', async () => {
  const ac = new AbortController();
  const res = await fetch(base + '/v1/completions', {
    method: 'POST', headers: auth, signal: ac.signal,
    body: JSON.stringify({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 1000, temperature: 0, ignore_eos: true, stream: true }),
  });
  const reader = res.body.getReader();
  await reader.read();
  let m = await metrics();
  assert.ok(m.get('pollux:num_requests_running') >= 1, 'the request should be running');
  ac.abort();
  const end = Date.now() + 5000;
  for (;;) {
    m = await metrics();
    // The counter moves when the connection is closed, which may come a
    // moment after the scheduler freed the blocks.
    if (m.get('pollux:num_requests_running') === 0 && m.get('pollux:kv_blocks', { state: 'used' }) === 0 &&
        m.get('pollux:client_disconnects_total') >= 1) break;
    assert.ok(Date.now() < end, 'blocks not freed or disconnect not counted:\n' + m.text);
    await new Promise((r) => setTimeout(r, 50));
  }
});

test('a client that gives up on a non-streamed request frees its blocks too', async () => {
  // A raw socket closed with a plain FIN (curl's way, unlike fetch's abort),
  // while the connection is parked waiting for the whole answer.
  const body = JSON.stringify({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 1500, n: 8, temperature: 0, ignore_eos: true });
  const url = new URL(base);
  const sock = connect(Number(url.port), url.hostname);
  await new Promise((r) => sock.on('connect', r));
  sock.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  let m;
  const start = Date.now();
  for (;;) {
    m = await metrics();
    if (m.get('pollux:num_requests_running') >= 1) break;
    assert.ok(Date.now() - start < 5000, 'the request never started');
    await new Promise((r) => setTimeout(r, 20));
  }
  sock.end(); // 8 x 1500 tokens take over 2 s: the cancel must come first
  const end = Date.now() + 1000;
  for (;;) {
    m = await metrics();
    if (m.get('pollux:num_requests_running') === 0 && m.get('pollux:kv_blocks', { state: 'used' }) === 0) break;
    assert.ok(Date.now() < end, 'blocks not freed after the client gave up:\n' + m.text);
    await new Promise((r) => setTimeout(r, 50));
  }
  sock.destroy();
});
