// json.test.mjs — attacks.md items 14-34 (JSON and API semantics): nesting
// bombs, bodies cut mid-string, type and range confusion on every numeric
// field, n/best_of, max_tokens, prompts over the context, empty prompts,
// token-id prompts, tokenize/detokenize, logit_bias, top_logprobs,
// context-shift knobs, sampling domains, stop strings, grammar/schema
// fields, tokenizer stress and chat structure. Each test ends with the
// post-conditions (postcond.mjs). The daemon runs with a 256-token context
// so that context limits are reached quickly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Guard, post, req, assertError, chat, completion, gemini, metrics } from './postcond.mjs';

const CTX = 256;
const N_VOCAB = 1536; // the tiny gemma3 model of tools/pollux-mkmodel
let g;
before(async () => { g = await Guard.start(['--ctx', String(CTX)]); });
after(async () => { await g.stop(); });

const GEM = '/v1beta/models/tiny:generateContent';
const C = '/v1/completions';
const CHAT = '/v1/chat/completions';
const utf8 = new TextDecoder('utf-8', { fatal: true });

// Splices a raw JSON value into a body: {"model":..., <field>: <raw>}.
const rawBody = (base, field, rawv) => {
  const s = JSON.stringify(base);
  return `${s.slice(0, -1)},"${field}":${rawv}}`;
};

test('14: nesting bombs: [ x100000 and {"a": x100000 give 400', async () => {
  for (const b of ['['.repeat(100000), '{"a":'.repeat(100000), '['.repeat(100000) + ']'.repeat(100000),
    `{"model":"x","prompt":"a","logit_bias":${'{"a":'.repeat(50000)}1${'}'.repeat(50000)}}`,
    `{"model":"x","messages":${'['.repeat(2000)}${']'.repeat(2000)}}`]) {
    assertError(await post(g.base, C, b), [400, 413]);
    assertError(await post(g.base, CHAT, b), [400, 413]);
    assertError(await post(g.base, GEM, b), [400, 413], 'gemini');
  }
  // Nesting inside an ignored field is still parsed (and bounded).
  const deep = `{"model":"x","prompt":"a","max_tokens":1,"ignored":${'['.repeat(5000)}${']'.repeat(5000)}}`;
  assertError(await post(g.base, C, deep), 400);
  await g.check('nesting');
});

test('15: bodies ending mid-string or mid-token at every length near a page: 400', async () => {
  for (const n of [4095, 4096, 4097, 8191, 8192]) {
    const head = '{"model":"x","prompt":"';
    assertError(await post(g.base, C, head + 'a'.repeat(n - head.length)), 400);
    assertError(await post(g.base, C, head + 'a'.repeat(n - head.length - 1) + '\\'), 400);
    assertError(await post(g.base, C, head + 'a'.repeat(n - head.length - 2) + '\\u'), 400);
  }
  for (const b of ['{"a":"', '{"a":"\\', '{"a":"\\u00', '{"a":1e', '{"a":-', '{"a":tru', '{"a', '{"a":"\xe2\x82']) {
    assertError(await post(g.base, C, b), 400);
    assertError(await post(g.base, GEM, b), 400, 'gemini');
  }
  await g.check('mid-string');
});

const BAD_ANY = ['"100"', 'true', '[]', '{}', '1e400', '-1e400', '"NaN"', '9007199254740993'];
const INT_FIELDS = ['max_tokens', 'n', 'top_k', 'best_of', 'priority', 'seed', 'max_completion_tokens'];
const NUM_FIELDS = ['temperature', 'top_p', 'min_p', 'presence_penalty', 'frequency_penalty', 'repetition_penalty', 'timeout'];

test('18: type and range confusion on every numeric field: 400', async () => {
  const base = completion('hi', { max_tokens: 2 });
  for (const f of [...INT_FIELDS, ...NUM_FIELDS, 'logprobs']) {
    const bad = [...BAD_ANY];
    if (INT_FIELDS.includes(f) || f === 'logprobs') bad.push('1.5', '2.5e0');
    if (f !== 'seed') bad.push('2147483648', '4294967297');
    for (const v of bad) {
      const b = { ...base };
      delete b[f];
      const r = await post(g.base, C, rawBody(b, f, v));
      assertError(r, 400);
    }
  }
  for (const f of ['max_tokens', 'temperature', 'top_p', 'n', 'top_logprobs', 'presence_penalty']) {
    for (const v of BAD_ANY) {
      const b = chat('hi', { logprobs: true });
      delete b[f];
      assertError(await post(g.base, CHAT, rawBody(b, f, v)), 400);
    }
  }
  for (const f of ['maxOutputTokens', 'temperature', 'topP', 'topK', 'candidateCount', 'seed', 'presencePenalty', 'logprobs']) {
    for (const v of [...BAD_ANY, ...(f === 'maxOutputTokens' || f === 'candidateCount' || f === 'topK' ? ['1.5', '2147483648'] : [])]) {
      const s = `{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"responseLogprobs":true,"${f}":${v}}}`;
      assertError(await post(g.base, GEM, s), 400, 'gemini');
    }
  }
  await g.check('type confusion');
});

test('19: n and best_of huge: 400 before any per-choice allocation', async () => {
  for (const [f, v] of [['n', 2147483647], ['n', 1e9], ['n', 9], ['best_of', 1e6], ['best_of', 2147483647]]) {
    assertError(await post(g.base, C, completion('hi', { [f]: v })), 400);
  }
  assertError(await post(g.base, CHAT, chat('hi', { n: 2147483647 })), 400);
  assertError(await post(g.base, GEM, gemini('hi', { generationConfig: { candidateCount: 1e9 } })), 400, 'gemini');
  const ok = await post(g.base, C, completion('hi', { n: 8, max_tokens: 2 }));
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.choices.length, 8);
  await g.check('n');
});

test('20: max_tokens 0, -1, 1e12 give 400; absent is bounded by the context', async () => {
  for (const v of [0, -1, 1e12, -2147483648]) {
    assertError(await post(g.base, C, completion('hi', { max_tokens: v })), 400);
    assertError(await post(g.base, CHAT, chat('hi', { max_tokens: v })), 400);
    assertError(await post(g.base, GEM, gemini('hi', { generationConfig: { maxOutputTokens: v } })), 400, 'gemini');
  }
  const b = completion('hi', { ignore_eos: true });
  delete b.max_tokens;
  const r = await post(g.base, C, b);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].finish_reason, 'length');
  assert.ok(r.json.usage.prompt_tokens + r.json.usage.completion_tokens <= CTX, JSON.stringify(r.json.usage));
  await g.check('max_tokens');
});

test('21: a prompt over the context, 10 times in a row: 400 context_length_exceeded each time', async () => {
  const long = 'word '.repeat(CTX * 2);
  for (let i = 0; i < 10; i++) {
    let r = await post(g.base, C, completion(long));
    assertError(r, 400);
    assert.equal(r.json.error.code, 'context_length_exceeded');
    r = await post(g.base, CHAT, chat(long));
    assertError(r, 400);
    assert.equal(r.json.error.code, 'context_length_exceeded');
    assertError(await post(g.base, GEM, gemini(long)), 400, 'gemini');
  }
  // prompt + max_tokens over the context: refused (or clamped, never over).
  const r = await post(g.base, C, completion('word '.repeat(100), { max_tokens: CTX, ignore_eos: true }));
  if (r.status === 200) assert.ok(r.json.usage.total_tokens <= CTX);
  else assertError(r, 400);
  await g.check('prompt over context');
});

test('22: empty prompts and messages: 400 or a valid generation, and the next request is served', async () => {
  const cases = [[C, completion('')], [C, completion([])], [C, completion([[]])], [C, completion([''])],
    [CHAT, { model: 'x', messages: [] }], [CHAT, chat('')], [CHAT, chat([])], [CHAT, chat([{ type: 'text', text: '' }])],
    [GEM, { contents: [] }], [GEM, { contents: [{ parts: [] }] }], [GEM, gemini('')]];
  for (const [p, b] of cases) {
    const r = await post(g.base, p, b);
    if (r.status !== 200) assertError(r, 400, p === GEM ? 'gemini' : 'openai');
    const ok = await post(g.base, C, completion('next', { max_tokens: 1 }));
    assert.equal(ok.status, 200);
  }
  await g.check('empty prompts');
});

test('23: token-id prompts out of range, fractional, or 10^7 long: 400/413', async () => {
  for (const p of [[-1], [N_VOCAB], [4294967295], [1.5], [1e400], ['a', 1], [[1, 2], 3], [2147483648], [-2147483649]]) {
    const r = await post(g.base, C, rawBody({ model: 'x', max_tokens: 1 }, 'prompt', JSON.stringify(p).replace('null', '1e400')));
    assertError(r, 400);
  }
  const big = '[' + Array(10000000).fill(5).join(',') + ']';
  const r = await post(g.base, C, rawBody({ model: 'x', max_tokens: 1 }, 'prompt', big));
  assertError(r, [400, 413]);
  const ok = await post(g.base, C, completion([2, 5, 6], { max_tokens: 1 }));
  assert.equal(ok.status, 200, ok.text);
  await g.check('token-id prompts');
});

test('24: /tokenize and /detokenize: out-of-range ids 400, byte pieces valid UTF-8 JSON', async () => {
  for (const t of [[-1], [N_VOCAB], [4294967295], [1.5], ['x'], [2147483648]])
    assertError(await post(g.base, '/detokenize', { tokens: t }), 400);
  assertError(await post(g.base, '/detokenize', rawBody({}, 'tokens', '[' + Array(10000000).fill(5).join(',') + ']')), [400, 413]);
  // Every id, alone: the answer is valid UTF-8 JSON even for byte tokens.
  const ids = [...Array(N_VOCAB).keys()];
  for (let i = 0; i < ids.length; i += 256) {
    for (const id of ids.slice(i, i + 256)) {
      const r = await req(g.base, 'POST', '/detokenize', { tokens: [id] });
      assert.equal(r.status, 200, r.text);
    }
  }
  // Raw bytes of the answers must decode strictly.
  const { request } = await import('node:http');
  const rawText = (path, body) => new Promise((res, rej) => {
    const u = new URL(g.base);
    const q = request({ host: u.hostname, port: u.port, path, method: 'POST', agent: false, headers: { 'Content-Type': 'application/json', Connection: 'close' } }, (s) => {
      const parts = []; s.on('data', (c) => parts.push(c)); s.on('end', () => res(Buffer.concat(parts)));
    });
    q.on('error', rej); q.end(JSON.stringify(body));
  });
  const all = await rawText('/detokenize', { tokens: ids });
  JSON.parse(utf8.decode(all));
  const pieces = await rawText('/tokenize', { content: 'a\u00e9\u20ac\u{1F600} \n\t\u0001x', with_pieces: true });
  const pj = JSON.parse(utf8.decode(pieces));
  assert.ok(Array.isArray(pj.tokens) && pj.tokens.length > 0);
  await g.check('tokenize');
});

test('25: logit_bias with bad keys or values: 400', async () => {
  for (const lb of ['{"-3":1}', '{"999999999":1}', '{"abc":1}', '{"1e3":1}', '{"":1}', '{"1.5":1}', `{"${N_VOCAB}":1}`,
    '{"4294967297":1}', '{"1":"NaN"}', '{"1":1e308}', '{"1":1e400}', '{"1":-1e400}', '{"1":101}', '{"1":true}', '{"1":null}',
    '[1]', '"x"', '{" 1":1}', '{"01":1}', '{"+1":1}']) {
    assertError(await post(g.base, C, rawBody(completion('hi'), 'logit_bias', lb)), 400);
    assertError(await post(g.base, CHAT, rawBody(chat('hi'), 'logit_bias', lb)), 400);
  }
  // polluxd does not implement logit_bias: a valid one is refused too.
  const ok = await post(g.base, C, completion('hi', { logit_bias: { 5: -100, 6: 100 }, max_tokens: 2 }));
  if (ok.status !== 200) assertError(ok, 400);
  await g.check('logit_bias');
});

test('26/28: stop-token ids, allowed ids and context-shift knobs are not exposed (ignored, no effect)', async () => {
  const a = await post(g.base, C, completion('hi', { max_tokens: 3, ignore_eos: true }));
  for (const extra of [{ stop_token_ids: [-1, 99999999] }, { allowed_token_ids: [4294967295] }, { n_keep: -5, n_discard: 2147483647 },
    { n_keep: 1e9 }]) {
    const r = await post(g.base, C, completion('hi', { max_tokens: 3, ignore_eos: true, ...extra }));
    if (r.status === 200) assert.equal(r.json.choices[0].text, a.json.choices[0].text);
    else assertError(r, 400);
  }
  await g.check('ignored knobs');
});

test('27: top_logprobs / logprobs out of range: 400', async () => {
  for (const v of [-1, 21, N_VOCAB + 1, 1e9])
    assertError(await post(g.base, CHAT, chat('hi', { logprobs: true, top_logprobs: v })), 400);
  for (const v of [-1, 21, N_VOCAB + 1, 1e9])
    assertError(await post(g.base, C, completion('hi', { logprobs: v })), 400);
  for (const v of [-1, 21, 1e9])
    assertError(await post(g.base, GEM, gemini('hi', { generationConfig: { responseLogprobs: true, logprobs: v } })), 400, 'gemini');
  const r = await post(g.base, CHAT, chat('hi', { logprobs: true, top_logprobs: 20, max_tokens: 2 }));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].logprobs.content[0].top_logprobs.length, 20);
  await g.check('top_logprobs');
});

test('29: sampling domains: 400 out of range; temperature 0 deterministic across batch compositions', async () => {
  for (const [f, v] of [['temperature', -1], ['temperature', 1e308], ['temperature', 2.01], ['top_p', 0], ['top_p', 1.5],
    ['top_k', -2], ['top_k', 2147483648], ['min_p', 2], ['min_p', -0.1], ['presence_penalty', 1e308],
    ['frequency_penalty', -3], ['repetition_penalty', 0], ['repetition_penalty', 1e308]]) {
    assertError(await post(g.base, C, completion('hi', { [f]: v })), 400);
  }
  assertError(await post(g.base, C, rawBody(completion('hi'), 'seed', '18446744073709551616')), 400);
  for (const [f, v] of [['temperature', -1], ['topP', 1.5], ['topK', -2], ['presencePenalty', 1e308]])
    assertError(await post(g.base, GEM, gemini('hi', { generationConfig: { [f]: v } })), 400, 'gemini');
  // Greedy output does not depend on what else is in the batch.
  const body = completion('A greedy line', { max_tokens: 16, ignore_eos: true });
  const alone = (await post(g.base, C, body)).json.choices[0].text;
  const others = [1, 2, 3].map((i) => post(g.base, C, completion('other ' + 'x'.repeat(i * 20), { max_tokens: 24, temperature: 1, seed: i, ignore_eos: true })));
  const together = await Promise.all([post(g.base, C, body), ...others, post(g.base, C, { ...body, n: 3 })]);
  assert.equal(together[0].json.choices[0].text, alone);
  for (const c of together.at(-1).json.choices) assert.equal(c.text, alone);
  await g.check('sampling');
});

test('30: stop strings over the caps: 400; a normal stop works', async () => {
  for (const s of [Array(10000).fill('x'), ['a'.repeat(1 << 20)], ['a', 'b', 'c', 'd', 'e'], [''], '', [1], ['a'.repeat(257)]])
    assertError(await post(g.base, C, completion('hi', { stop: s })), [400, 413]);
  assertError(await post(g.base, GEM, gemini('hi', { generationConfig: { stopSequences: ['a', 'b', 'c', 'd', 'e', 'f'] } })), 400, 'gemini');
  assertError(await post(g.base, GEM, gemini('hi', { generationConfig: { stopSequences: ['a'.repeat(1 << 20)] } })), [400, 413], 'gemini');
  const r = await post(g.base, C, completion('hi', { stop: ['a'.repeat(256), 'b', 'c', 'd'], max_tokens: 4 }));
  assert.equal(r.status, 200, r.text);
  await g.check('stop');
});

test('31: grammar and schema bombs are refused fast (no grammar support)', async () => {
  const deepSchema = (n) => { let s = '{"type":"string"}'; for (let i = 0; i < n; i++) s = `{"type":"object","properties":{"a":${s}}}`; return s; };
  const bombs = [
    rawBody(completion('hi'), 'grammar', JSON.stringify('root ::= ' + '('.repeat(60000) + '"a"' + ')'.repeat(60000))),
    rawBody(completion('hi'), 'grammar', JSON.stringify(Array.from({ length: 5000 }, (_, i) => `r${i} ::= r${i + 1}`).join('\n'))),
    rawBody(chat('hi'), 'response_format', `{"type":"json_schema","json_schema":{"name":"x","schema":${deepSchema(10000)}}}`),
    rawBody(chat('hi'), 'response_format', '{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"string","pattern":"((((((((("}}}'),
    rawBody(chat('hi'), 'response_format', '{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"string","pattern":"^+[a-z]$"}}}'),
    rawBody(chat('hi'), 'response_format', '{"type":"json_object"}'),
    rawBody(chat('hi'), 'tools', '[{"type":"function","function":{"name":"f","parameters":' + deepSchema(3000) + '}}]'),
  ];
  for (const b of bombs) {
    const t0 = Date.now();
    const r = await post(g.base, b.includes('"messages"') ? CHAT : C, b);
    assert.ok(Date.now() - t0 < 2000, 'took over 2 s');
    if (r.status !== 200) assertError(r, 400);
  }
  assertError(await post(g.base, GEM, gemini('hi', { generationConfig: { responseMimeType: 'application/json', responseSchema: { type: 'OBJECT' } } })), 400, 'gemini');
  await g.check('grammar');
});

test('32: tokenizer stress: one char repeated 1 MiB times completes quickly, then 400 over the context', async () => {
  for (const ch of ['a', '1', '\u{1F600}', '\n', ' ', '\u00e9', 'ab']) {
    const s = ch.repeat(Math.floor((1 << 20) / Buffer.byteLength(ch)));
    const t0 = Date.now();
    const r = await post(g.base, '/tokenize', { content: s });
    assert.equal(r.status, 200, r.text.slice(0, 200));
    assert.ok(r.json.tokens.length > 0);
    assert.ok(Date.now() - t0 < 10000, `${JSON.stringify(ch)} took ${Date.now() - t0} ms`);
    const c = await post(g.base, C, completion(s));
    assertError(c, 400);
    assert.equal(c.json.error.code, 'context_length_exceeded');
  }
  await g.check('tokenizer stress');
});

test('34: chat structure: bad roles, order, counts and fields: 400 or documented, bounded time', async () => {
  const m = (role, content, extra = {}) => ({ role, content, ...extra });
  const cases = [
    [m('hacker', 'x')], [m('user', 'a'), m('system', 'b')], [m('tool', 'x')], [m('user', null)], [m('assistant', null)],
    [m('user', 'x', { name: 1 })], [{ content: 'x' }], [m('user', 5)], [m('user', { text: 'x' })], [m('user', [{ type: 'nope' }])],
    [m('user', [{ type: 'text' }])], [m('user', [{ type: 'text', text: 5 }])], [m('user', [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }])],
    [m('user', 'a'), m('user', 'b')], [m('assistant', 'a')],
  ];
  for (const messages of cases) {
    const r = await post(g.base, CHAT, { model: 'x', max_tokens: 1, messages });
    if (r.status !== 200) assertError(r, 400);
  }
  for (const messages of [Array.from({ length: 10000 }, (_, i) => m(i % 2 ? 'assistant' : 'user', 'x')),
    [m('user', Array.from({ length: 10000 }, () => ({ type: 'text', text: 'x' })))]]) {
    const t0 = Date.now();
    const r = await post(g.base, CHAT, { model: 'x', max_tokens: 1, messages });
    assert.ok(Date.now() - t0 < 5000);
    assertError(r, 400);
  }
  for (const contents of [[{ role: 'hacker', parts: [{ text: 'x' }] }], [{ role: 'user', parts: [{ fileData: { fileUri: 'file:///etc/passwd' } }] }],
    [{ role: 'user', parts: [{ text: 'a', inlineData: { mimeType: 'image/png', data: 'AAAA' } }] }], [{ role: 'user', parts: [{}] }],
    [{ role: 'model', parts: [{ text: 'x' }] }], Array.from({ length: 10000 }, (_, i) => ({ role: i % 2 ? 'model' : 'user', parts: [{ text: 'x' }] }))]) {
    const r = await post(g.base, GEM, { contents, generationConfig: { maxOutputTokens: 1 } });
    if (r.status !== 200) assertError(r, 400, 'gemini');
  }
  await g.check('chat structure');
});

test('66: 100 consecutive client errors do not trip anything: still serving', async () => {
  for (let i = 0; i < 100; i++) assertError(await post(g.base, C, completion('hi', { max_tokens: -i - 1 })), 400);
  const m = await metrics(g.base);
  assert.equal(m.running, 0);
  await g.check('100 errors');
});
