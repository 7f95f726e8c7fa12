// gemini.test.mjs — polluxd's Gemini dialect over HTTP with fetch:
// generateContent, both encodings of streamGenerateContent (SSE with
// ?alt=sse, a JSON array without), countTokens, models, every error class in
// Google's shape, keys from x-goog-api-key / ?key= / Bearer, keepalives,
// hang-ups and the SIGTERM drain. Run by check-daemon.sh (node --test).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './harness.mjs';

const KEY = 'gk-test';
const MODEL = 'gemma-3-tiny';
let d, base;

before(async () => {
  d = await startDaemon(['--api-key', KEY, '--model-id', MODEL, '--max-body-bytes', '65536',
    '--kv-cache-mb', '16']);
  base = d.base;
});

after(async () => {
  const res = await d.stop();
  assert.equal(res.code, 0, 'polluxd should exit 0 on SIGTERM:\n' + d.log());
});

const hdr = { 'x-goog-api-key': KEY, 'Content-Type': 'application/json' };
const url = (method, { ver = 'v1beta', model = MODEL, query = '' } = {}) =>
  `${base}/${ver}/models/${encodeURIComponent(model)}:${method}${query}`;

async function post(u, body, headers = hdr, b = base) {
  const r = await fetch(u.startsWith('http') ? u : b + u, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, text, json };
}

// Asserts a Google-shaped error with the given HTTP status and status name.
function googleError(r, code, status) {
  assert.equal(r.status, code, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.equal(r.json.error.code, code, r.text);
  assert.equal(r.json.error.status, status, r.text);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(!('type' in r.json.error), 'no OpenAI fields in a Google error');
}

// SSE events of a body ("data: {json}\r\n\r\n"; comments skipped).
function sseEvents(text) {
  return text.split('\r\n\r\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)));
}

const hello = (cfg = {}) => ({
  contents: [{ role: 'user', parts: [{ text: 'Hello there' }] }],
  generationConfig: { temperature: 0, maxOutputTokens: 8, ...cfg },
});

test('generateContent: candidates, finishReason, usageMetadata, modelVersion, responseId', async () => {
  const r = await post(url('generateContent'), hello());
  assert.equal(r.status, 200, r.text);
  const j = r.json;
  assert.equal(j.candidates.length, 1);
  const c = j.candidates[0];
  assert.equal(c.content.role, 'model');
  assert.equal(typeof c.content.parts[0].text, 'string');
  assert.equal(c.index, 0);
  assert.ok(['STOP', 'MAX_TOKENS'].includes(c.finishReason));
  assert.ok(j.usageMetadata.candidatesTokenCount >= 1 && j.usageMetadata.candidatesTokenCount <= 8);
  assert.equal(j.usageMetadata.totalTokenCount, j.usageMetadata.promptTokenCount + j.usageMetadata.candidatesTokenCount);
  assert.equal(j.modelVersion, MODEL);
  assert.match(j.responseId, /^[0-9a-f]+$/);
  // countTokens agrees with the prompt the generation counted.
  const ct = await post(url('countTokens'), { contents: hello().contents });
  assert.equal(ct.status, 200, ct.text);
  assert.equal(ct.json.totalTokens, j.usageMetadata.promptTokenCount);
  const wrapped = await post(url('countTokens'), { generateContentRequest: { model: `models/${MODEL}`, ...hello() } });
  assert.equal(wrapped.json.totalTokens, ct.json.totalTokens);
});

test('snake_case and camelCase are the same request; the v1 prefix answers too', async () => {
  const camel = {
    contents: [{ role: 'user', parts: [{ text: 'Hi' }] }, { role: 'model', parts: [{ text: 'Hello' }] }, { parts: [{ text: 'More' }] }],
    systemInstruction: { parts: [{ text: 'Be terse.' }] },
    generationConfig: { temperature: 0, maxOutputTokens: 6, topK: 5, topP: 0.9, stopSequences: ['zzzz'] },
    safetySettings: [{ category: 'HARM_CATEGORY_HARASSMENT', threshold: 'BLOCK_NONE' }],
  };
  const snake = {
    contents: camel.contents,
    system_instruction: camel.systemInstruction,
    generation_config: { temperature: 0, max_output_tokens: 6, top_k: 5, top_p: 0.9, stop_sequences: ['zzzz'] },
    safety_settings: camel.safetySettings,
  };
  const a = await post(url('generateContent'), camel);
  const b = await post(url('generateContent', { ver: 'v1' }), snake);
  assert.equal(a.status, 200, a.text);
  assert.equal(b.status, 200, b.text);
  assert.equal(a.json.candidates[0].content.parts[0].text, b.json.candidates[0].content.parts[0].text);
  for (const k of ['promptTokenCount', 'candidatesTokenCount', 'totalTokenCount'])
    assert.equal(a.json.usageMetadata[k], b.json.usageMetadata[k]);
  // The system instruction is part of the prompt.
  const without = await post(url('countTokens'), { contents: camel.contents });
  const withSys = await post(url('countTokens'), { contents: camel.contents, system_instruction: camel.systemInstruction });
  assert.ok(withSys.json.totalTokens > without.json.totalTokens);
  // Both spellings of one field at once is an error.
  const both = await post(url('generateContent'), { ...camel, generation_config: snake.generation_config });
  googleError(both, 400, 'INVALID_ARGUMENT');
});

test('streamGenerateContent?alt=sse: SSE events, deltas add up to the unary text', async () => {
  const body = hello({ maxOutputTokens: 12 });
  const whole = (await post(url('generateContent'), body)).json;
  const res = await fetch(url('streamGenerateContent', { query: '?alt=sse' }), { method: 'POST', headers: hdr, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const text = await res.text();
  assert.ok(text.endsWith('\r\n\r\n'));
  assert.ok(!text.includes('[DONE]'), 'Gemini streams have no sentinel');
  const ev = sseEvents(text);
  assert.ok(ev.length >= 2);
  const joined = ev.map((e) => e.candidates[0].content.parts.map((p) => p.text).join('')).join('');
  assert.equal(joined, whole.candidates[0].content.parts[0].text);
  assert.ok(ev.slice(0, -1).every((e) => !e.candidates[0].finishReason && !e.usageMetadata));
  const last = ev.at(-1);
  assert.equal(last.candidates[0].finishReason, whole.candidates[0].finishReason);
  for (const k of ['promptTokenCount', 'candidatesTokenCount', 'totalTokenCount'])
    assert.equal(last.usageMetadata[k], whole.usageMetadata[k]);
  assert.ok(ev.every((e) => e.responseId === ev[0].responseId && e.modelVersion === MODEL));
});

test('streamGenerateContent without alt: one JSON array, written progressively', async () => {
  const body = hello({ maxOutputTokens: 10, candidateCount: 2, temperature: 1, seed: 5 });
  const res = await fetch(url('streamGenerateContent'), { method: 'POST', headers: hdr, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  let first = null, text = '';
  for await (const chunk of res.body) {
    const s = Buffer.from(chunk).toString();
    if (first === null) first = s;
    text += s;
  }
  assert.ok(first.startsWith('['));
  const arr = JSON.parse(text);
  assert.ok(Array.isArray(arr) && arr.length >= 2);
  const last = arr.at(-1);
  assert.deepEqual(last.candidates.map((c) => c.index), [0, 1]);
  assert.ok(last.candidates.every((c) => ['STOP', 'MAX_TOKENS'].includes(c.finishReason)));
  // Per-candidate texts equal the unary answer with the same seed.
  const whole = (await post(url('generateContent'), body)).json;
  for (const i of [0, 1]) {
    const t = arr.flatMap((e) => e.candidates.filter((c) => c.index === i && !c.finishReason).map((c) => c.content.parts[0].text)).join('');
    assert.equal(t, whole.candidates[i].content.parts[0].text);
  }
  assert.equal(last.usageMetadata.candidatesTokenCount, whole.usageMetadata.candidatesTokenCount);
});

test('logprobsResult when responseLogprobs is set', async () => {
  const r = await post(url('generateContent'), hello({ maxOutputTokens: 4, responseLogprobs: true, logprobs: 3 }));
  assert.equal(r.status, 200, r.text);
  const c = r.json.candidates[0];
  const n = r.json.usageMetadata.candidatesTokenCount;
  assert.equal(c.logprobsResult.chosenCandidates.length, n);
  assert.equal(c.logprobsResult.topCandidates.length, n);
  for (let i = 0; i < n; i++) {
    const top = c.logprobsResult.topCandidates[i].candidates;
    assert.equal(top.length, 3);
    // Greedy: the chosen token is the most likely one.
    assert.equal(c.logprobsResult.chosenCandidates[i].logProbability, top[0].logProbability);
  }
  const sum = c.logprobsResult.chosenCandidates.reduce((s, x) => s + x.logProbability, 0);
  assert.ok(Math.abs(c.avgLogprobs - sum / n) < 1e-4);
  const plain = await post(url('generateContent'), hello({ maxOutputTokens: 4 }));
  assert.ok(!('logprobsResult' in plain.json.candidates[0]));
});

test('models list and get, in both prefixes; GET /v1/models stays OpenAI for OpenAI clients', async () => {
  let r = await fetch(`${base}/v1beta/models`, { headers: hdr });
  let j = await r.json();
  assert.equal(j.models.length, 1);
  assert.equal(j.models[0].name, `models/${MODEL}`);
  assert.ok(j.models[0].supportedGenerationMethods.includes('generateContent'));
  assert.ok(j.models[0].inputTokenLimit > 0);
  r = await fetch(`${base}/v1beta/models/${MODEL}?key=${KEY}`);
  j = await r.json();
  assert.equal(j.name, `models/${MODEL}`);
  r = await fetch(`${base}/v1/models/${MODEL}`, { headers: hdr });
  assert.equal((await r.json()).name, `models/${MODEL}`);
  r = await fetch(`${base}/v1/models`, { headers: hdr });
  assert.equal((await r.json()).models.length, 1);
  r = await fetch(`${base}/v1/models`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal((await r.json()).object, 'list');
  r = await fetch(`${base}/v1/models/${MODEL}`, { headers: { Authorization: `Bearer ${KEY}` } });
  j = await r.json();
  assert.equal(j.object, 'model');
  assert.equal(j.id, MODEL);
  r = await fetch(`${base}/v1/models/nope`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.code, 'model_not_found');
});

test('keys: x-goog-api-key, ?key= and Bearer; missing or wrong is UNAUTHENTICATED', async () => {
  const body = hello({ maxOutputTokens: 1 });
  assert.equal((await post(url('generateContent'), body)).status, 200);
  assert.equal((await post(url('generateContent', { query: `?key=${KEY}` }), body, {})).status, 200);
  assert.equal((await post(url('generateContent'), body, { Authorization: `Bearer ${KEY}` })).status, 200);
  googleError(await post(url('generateContent'), body, {}), 401, 'UNAUTHENTICATED');
  googleError(await post(url('generateContent', { query: '?key=nope' }), body, {}), 401, 'UNAUTHENTICATED');
  googleError(await post(url('streamGenerateContent', { query: '?alt=sse' }), body, { 'x-goog-api-key': 'nope' }), 401, 'UNAUTHENTICATED');
  const r = await fetch(`${base}/v1beta/models`);
  googleError({ status: r.status, headers: r.headers, json: await r.json() }, 401, 'UNAUTHENTICATED');
  // The Gemini key header works on the OpenAI routes too (one key list).
  const o = await post('/v1/chat/completions', { model: 'x', messages: [{ role: 'user', content: 'a' }], max_tokens: 1 }, { 'x-goog-api-key': KEY, 'Content-Type': 'application/json' });
  assert.equal(o.status, 200, o.text);
});

test('errors: INVALID_ARGUMENT, NOT_FOUND, 405, 413, in Google shape', async () => {
  const bad = [
    '{"contents": [',
    '[]',
    {},
    { contents: [] },
    { contents: [{ role: 'assistant', parts: [{ text: 'x' }] }] },
    { contents: [{ role: 'user', parts: [] }] },
    { contents: [{ role: 'user', parts: [{ text: 'x', inlineData: { mimeType: 'image/png', data: 'AAAA' } }] }] },
    { contents: [{ role: 'user', parts: [{ fileData: { mimeType: 'image/png', fileUri: 'gs://x' } }] }] },
    { contents: [{ role: 'user', parts: [{ text: 42 }] }] },
    { contents: [{ role: 'user', parts: [{ inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } }] }] },
    { ...hello(), generationConfig: { temperature: 3 } },
    { ...hello(), generationConfig: { topP: 0 } },
    { ...hello(), generationConfig: { maxOutputTokens: 0 } },
    { ...hello(), generationConfig: { candidateCount: 100 } },
    { ...hello(), generationConfig: { logprobs: 2 } },
    { ...hello(), generationConfig: { stopSequences: ['a', 'b', 'c', 'd', 'e', 'f'] } },
    { ...hello(), generationConfig: { responseMimeType: 'application/json' } },
    { ...hello(), generationConfig: { maxOutputTokens: 100000 } },
    { ...hello(), tools: [{ functionDeclarations: [{ name: 'f' }] }] },
    { contents: [{ role: 'user', parts: [{ text: 'word '.repeat(3000) }] }] },
  ];
  for (const b of bad) googleError(await post(url('generateContent'), b), 400, 'INVALID_ARGUMENT');
  // A field error names the field.
  const r = await post(url('generateContent'), { ...hello(), generationConfig: { temperature: 3 } });
  assert.equal(r.json.error.details[0].fieldViolations[0].field, 'generationConfig.temperature');
  googleError(await post(url('countTokens'), { contents: hello().contents, generateContentRequest: hello() }), 400, 'INVALID_ARGUMENT');
  googleError(await post(url('generateContent', { model: 'gemini-2.5-flash' }), hello()), 404, 'NOT_FOUND');
  googleError(await post(url('streamGenerateContent', { model: 'nope', query: '?alt=sse' }), hello()), 404, 'NOT_FOUND');
  googleError(await post(url('embedContent'), hello()), 404, 'NOT_FOUND');
  let g = await fetch(`${base}/v1beta/models/nope`, { headers: hdr });
  googleError({ status: g.status, headers: g.headers, json: await g.json() }, 404, 'NOT_FOUND');
  g = await fetch(`${base}/v1beta/nothing`, { headers: hdr });
  googleError({ status: g.status, headers: g.headers, json: await g.json() }, 404, 'NOT_FOUND');
  g = await fetch(url('generateContent'), { headers: hdr });
  assert.equal(g.headers.get('allow'), 'POST');
  googleError({ status: g.status, headers: g.headers, json: await g.json() }, 405, 'UNIMPLEMENTED');
  googleError(await post(url('generateContent'), { contents: [{ parts: [{ text: 'a'.repeat(70000) }] }] }), 413, 'INVALID_ARGUMENT');
  // Still serving after all that.
  assert.equal((await post(url('generateContent'), hello({ maxOutputTokens: 1 }))).status, 200);
});

test('a Gemini client that hangs up mid-stream frees its KV blocks', async () => {
  // The first sample named `name` whose labels include `label` (k="v").
  const metric = async (name, label = '') => {
    const t = await (await fetch(base + '/metrics')).text();
    const line = t.split('\n').find((l) => (l.startsWith(name + '{') || l.startsWith(name + ' ')) && l.includes(label));
    return line ? Number(line.split(' ').at(-1)) : NaN;
  };
  const ac = new AbortController();
  // Eight candidates of 1,900 tokens: megabytes of events, far more than the
  // socket buffers hold, and longer than the hang-up takes to arrive (one
  // candidate finished first on a fast engine, and no disconnect was seen).
  const res = await fetch(url('streamGenerateContent', { query: '?alt=sse' }), {
    method: 'POST', headers: hdr, signal: ac.signal,
    body: JSON.stringify(hello({ maxOutputTokens: 1900, candidateCount: 8 })),
  });
  const reader = res.body.getReader();
  await reader.read();
  ac.abort();
  const end = Date.now() + 5000;
  for (;;) {
    if (await metric('pollux:num_requests_running') === 0 && await metric('pollux:kv_blocks', 'state="used"') === 0) break;
    assert.ok(Date.now() < end, 'blocks not freed after the hang-up');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(await metric('pollux:client_disconnects_total') >= 1);
});

// --- daemons of their own (these change the daemon's state for good) -------

const long = (extra = {}) => JSON.stringify({ contents: [{ parts: [{ text: 'Once upon a time' }] }],
  generationConfig: { temperature: 0, maxOutputTokens: 1900, ...extra } });

test('queue full: RESOURCE_EXHAUSTED 429; queued streams get keepalives in their framing', async () => {
  // The first request's third pass stalls 3 s (PX_TEST_FAULTS), so the
  // queued one waits past a keepalive however fast the engine is.
  const q = await startDaemon(['--model-id', MODEL, '--max-running', '1', '--max-waiting', '1', '--keepalive-s', '1'],
    { env: { PX_TEST_FAULTS: 'stall_step=3,stall_s=3' } });
  const u = (m, query = '') => `${q.base}/v1beta/models/${MODEL}:${m}${query}`;
  try {
    const first = await fetch(u('streamGenerateContent'), { method: 'POST', body: long({ candidateCount: 8 }) });
    const r1 = first.body.getReader();
    // Running once a candidate's text arrives (the array's '[' comes at once).
    for (let seen = ''; !seen.includes('{');) seen += new TextDecoder().decode((await r1.read()).value);
    const second = await fetch(u('streamGenerateContent', '?alt=sse'), { method: 'POST', body: long({ maxOutputTokens: 3 }) });
    assert.equal(second.status, 200);
    const r2 = second.body.getReader();
    const ping = new TextDecoder().decode((await r2.read()).value);
    assert.equal(ping, ': ping\r\n\r\n');
    const third = await post(u('generateContent'), long({ maxOutputTokens: 3 }), {}, q.base);
    googleError(third, 429, 'RESOURCE_EXHAUSTED');
    assert.ok(third.headers.get('retry-after'));
    await r1.cancel();
    let rest = '';
    for (;;) {
      const { done, value } = await r2.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    const ev = sseEvents(rest);
    assert.equal(ev.at(-1).usageMetadata.candidatesTokenCount, 3);
  } finally {
    const { code } = await q.stop();
    assert.equal(code, 0, 'polluxd should exit 0 (a sanitizer report makes it fail):\n' + q.log());
  }
});

test('deadline: DEADLINE_EXCEEDED 504, or an error element at the end of a stream', async () => {
  // Every pass stalls 50 ms (PX_TEST_FAULTS): the 8 x 1,900 tokens outlive
  // the 1 s deadline however fast the engine is.
  const t = await startDaemon(['--model-id', MODEL, '--request-timeout-s', '1'],
    { env: { PX_TEST_FAULTS: 'stall_step=1,stall_every=1,stall_s=0.05' } });
  const u = (m, query = '') => `${t.base}/v1beta/models/${MODEL}:${m}${query}`;
  try {
    googleError(await post(u('generateContent'), long({ candidateCount: 8 }), {}, t.base), 504, 'DEADLINE_EXCEEDED');
    const r = await post(u('streamGenerateContent'), long({ candidateCount: 8 }), {}, t.base);
    assert.equal(r.status, 200);
    const arr = JSON.parse(r.text);
    assert.equal(arr.at(-1).error.status, 'DEADLINE_EXCEEDED');
    const s = await post(u('streamGenerateContent', '?alt=sse'), long({ candidateCount: 8 }), {}, t.base);
    assert.equal(sseEvents(s.text).at(-1).error.code, 504);
  } finally {
    const { code } = await t.stop();
    assert.equal(code, 0, 'polluxd should exit 0 (a sanitizer report makes it fail):\n' + t.log());
  }
});

test('SIGTERM: a Gemini stream completes, a request on a kept-alive connection is still served', async () => {
  const s = await startDaemon(['--model-id', MODEL, '--drain-timeout-s', '20']);
  const u = (m, query = '') => `${s.base}/v1beta/models/${MODEL}:${m}${query}`;
  const res = await fetch(u('streamGenerateContent', '?alt=sse'), { method: 'POST', body: long({ maxOutputTokens: 300 }) });
  const reader = res.body.getReader();
  const first = await reader.read();
  s.proc.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  const late = await post(u('generateContent'), long({ maxOutputTokens: 2 }), {}, s.base).catch(() => null);
  if (late) assert.equal(late.status, 200, late.text);
  let text = new TextDecoder().decode(first.value);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  const ev = sseEvents(text);
  const last = ev.at(-1);
  // Greedy text may still meet an end-of-turn token before 300.
  assert.ok(['MAX_TOKENS', 'STOP'].includes(last.candidates[0].finishReason), JSON.stringify(last));
  const n = last.usageMetadata.candidatesTokenCount;
  assert.ok(n >= 1 && n <= 300);
  if (last.candidates[0].finishReason === 'MAX_TOKENS') assert.equal(n, 300);
  const { code, sig } = await s.exited;
  await s.stop();
  assert.equal(code, 0, `exit ${code} signal ${sig}; polluxd said:\n${s.log()}`);
});

test('while the model loads: UNAVAILABLE 503 with Retry-After', async () => {
  // PX_TEST_LOAD_DELAY_MS stretches the load so that the window is seen.
  const l = await startDaemon(['--model-id', MODEL], { env: { PX_TEST_LOAD_DELAY_MS: '1500' }, waitReady: false });
  try {
    for (const m of ['generateContent', 'countTokens']) {
      const r = await post(`${l.base}/v1beta/models/${MODEL}:${m}`, hello(), {}, l.base);
      googleError(r, 503, 'UNAVAILABLE');
      assert.match(r.json.error.message, /loading/);
      assert.ok(r.headers.get('retry-after'));
    }
  } finally {
    const { code } = await l.stop();
    assert.equal(code, 0, 'polluxd should exit 0:\n' + l.log());
  }
});

test('a model id holding ":" works for get and for methods', async () => {
  const id = 'gemma3:4b';
  const x = await startDaemon(['--model-id', id]);
  try {
    let r = await fetch(`${x.base}/v1beta/models/${id}`);
    assert.equal(r.status, 200);
    assert.equal((await r.json()).name, `models/${id}`);
    r = await fetch(`${x.base}/v1beta/models/${encodeURIComponent(id)}`);
    assert.equal((await r.json()).name, `models/${id}`);
    const g = await post(`${x.base}/v1beta/models/${id}:generateContent`, hello({ maxOutputTokens: 2 }), {}, x.base);
    assert.equal(g.status, 200, g.text);
    assert.equal(g.json.modelVersion, id);
    googleError(await post(`${x.base}/v1beta/models/gemma3:generateContent`, hello(), {}, x.base), 404, 'NOT_FOUND');
  } finally {
    const { code } = await x.stop();
    assert.equal(code, 0, 'polluxd should exit 0:\n' + x.log());
  }
});
