// sched.test.mjs — attacks.md items 59-61, 63, 67, 68, 73, 75, 76 (scheduler,
// KV exhaustion and streaming): oversubscribed KV blocks, forced preemption
// with identical greedy output, a full queue, queued clients hanging up,
// generation reaching the context end, disconnects (streamed and not),
// stop strings across chunks, the SSE headers a proxy needs and keepalive
// pings while queued. The slow variants (hundreds of clients, churn) are in
// slow.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Guard, post, req, raw, stream, sseEvents, assertError, assertErrorBody, completion, chat, gemini, metrics, until, sleep } from './postcond.mjs';

const C = '/v1/completions';
let g; // a KV pool of about 70 blocks of 16 tokens, context 512
before(async () => { g = await Guard.start(['--kv-cache-mb', '1', '--ctx', '512', '--max-running', '8']); });
after(async () => { await g.stop(); });

const long = (prompt, n, extra = {}) => completion(prompt, { max_tokens: n, ignore_eos: true, ...extra });

test('59/60: KV oversubscription and forced preemption: all finish, greedy output identical to a lone run', async () => {
  const prompts = Array.from({ length: 5 }, (_, i) => `Request number ${i} ` + 'pad '.repeat(20 + i * 10));
  // Reference runs two at a time (they fit; batching does not change greedy output, item 29).
  const alone = [];
  for (let i = 0; i < prompts.length; i += 2) {
    const rs = await Promise.all(prompts.slice(i, i + 2).map((p) => post(g.base, C, long(p, 260))));
    for (const r of rs) { assert.equal(r.status, 200, r.text); alone.push(r.json.choices[0].text); }
  }
  const m0 = await metrics(g.base);
  // Five at once need ~5 x 300 tokens, more than the pool's ~1100.
  const rs = await Promise.all(prompts.map((p, i) => (i % 2
    ? stream(g.base, C, long(p, 260, { stream: true })).then((s) => ({ status: s.status, text: s.text, streamed: true }))
    : post(g.base, C, long(p, 260)))));
  rs.forEach((r, i) => {
    assert.equal(r.status, 200, r.text.slice(0, 300));
    let text;
    if (r.streamed) {
      const ev = sseEvents(r.text);
      assert.equal(ev.at(-1), '[DONE]', 'a stream ended without [DONE]: ' + r.text.slice(-300));
      const chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
      assert.ok(chunks.every((c) => !c.error), 'error event mid-stream');
      text = chunks.map((c) => c.choices[0]?.text ?? '').join('');
    } else {
      text = r.json.choices[0].text;
    }
    assert.equal(text, alone[i], `request ${i}: output differs from its lone run`);
  });
  const m1 = await metrics(g.base);
  assert.ok(Number.isFinite(m1.preemptions), 'pollux:num_preemptions_total not exported');
  assert.ok(m1.preemptions >= m0.preemptions);
  await g.check('oversubscription');
});

test('67: generation reaching the context end: finish_reason length, not an error', async () => {
  const near = 'end '.repeat(140); // about 420 tokens
  const r = await post(g.base, C, completion(near, { ignore_eos: true, max_tokens: undefined }));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].finish_reason, 'length');
  assert.equal(r.json.usage.total_tokens, 512);
  const s = await stream(g.base, '/v1/chat/completions', chat(near, { ignore_eos: true, max_tokens: undefined, stream: true }));
  const ev = sseEvents(s.text);
  assert.equal(ev.at(-1), '[DONE]');
  const last = JSON.parse(ev.at(-2));
  assert.equal(last.choices[0].finish_reason, 'length');
  await g.check('context end');
});

test('68: a stream hung up after its first chunk, and a non-streamed request mid-generation: cancelled, KV freed within 1 s', async () => {
  for (const path of [C, '/v1/chat/completions', '/v1beta/models/tiny:streamGenerateContent?alt=sse']) {
    const body = path.includes('v1beta')
      ? gemini('Keep going', { generationConfig: { maxOutputTokens: 480, temperature: 0 } })
      : path === C ? long('Keep going', 480, { stream: true }) : chat('Keep going', { max_tokens: 480, ignore_eos: true, stream: true });
    const s = await stream(g.base, path, body, { onData: (t) => /data: \{/.test(t) });
    assert.ok(s.hungUp);
    const t0 = Date.now();
    assert.ok(await until(async () => { const m = await metrics(g.base); return m.running === 0 && m.kvUsed === 0; }, 1500),
      `${path}: still running ${Date.now() - t0} ms after the hang-up`);
  }
  const body = JSON.stringify(long('Keep going', 480));
  const r = await raw(g.base, [`POST ${C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`], { timeout: 300 });
  assert.equal(r.closed, false, 'answered too soon for the test');
  assert.ok(await until(async () => { const m = await metrics(g.base); return m.running === 0 && m.kvUsed === 0; }, 1500),
    'non-streamed request still running after its client left');
  await g.check('disconnects');
});

test('73: a stop string spanning chunks (and multibyte text) never leaks; finish_reason stop', async () => {
  const prompt = 'Stop here please';
  const full = (await post(g.base, C, long(prompt, 40))).json.choices[0].text;
  const chars = [...full];
  assert.ok(chars.length > 12, 'output too short: ' + JSON.stringify(full));
  // A stop made of a few tokens' worth of characters from the middle.
  for (const [a, b] of [[4, 9], [6, 8], [1, 3]]) {
    const stop = chars.slice(a, b).join('');
    const want = full.slice(0, full.indexOf(stop));
    const s = await stream(g.base, C, long(prompt, 40, { stream: true, stop: [stop] }));
    const ev = sseEvents(s.text);
    assert.equal(ev.at(-1), '[DONE]');
    const chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
    const text = chunks.map((c) => c.choices[0]?.text ?? '').join('');
    assert.equal(text, want, `stop ${JSON.stringify(stop)}`);
    assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason).at(-1).choices[0].finish_reason, 'stop');
    const whole = await post(g.base, C, long(prompt, 40, { stop: [stop] }));
    assert.equal(whole.json.choices[0].text, want);
  }
  // A multibyte stop: "é€" where the output holds it only partially never ends early.
  const s = await stream(g.base, C, long(prompt, 40, { stream: true, stop: ['\u00e9\u20ac\u{1F600}'] }));
  const text = sseEvents(s.text).slice(0, -1).map((e) => JSON.parse(e).choices[0]?.text ?? '').join('');
  assert.equal(text, full);
  await g.check('stop strings');
});

test('75: SSE headers a proxy needs: text/event-stream, no-cache, X-Accel-Buffering: no; first token before the end', async () => {
  const r = await raw(g.base, [`POST ${C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ` +
    `${JSON.stringify(long('hdr', 3, { stream: true })).length}\r\n\r\n${JSON.stringify(long('hdr', 3, { stream: true }))}`]);
  assert.match(r.data, /\r\ncontent-type: text\/event-stream/i);
  assert.match(r.data, /\r\ncache-control: no-cache/i);
  assert.match(r.data, /\r\nx-accel-buffering: no/i);
  let firstAt = 0;
  const t0 = Date.now();
  const s = await stream(g.base, C, long('first', 400, { stream: true }), { onData: (t) => { if (!firstAt && /data: \{/.test(t)) firstAt = Date.now(); return false; } });
  const end = Date.now();
  assert.ok(firstAt > 0 && firstAt - t0 < end - t0, 'the first token came with the end');
  assert.equal(sseEvents(s.text).at(-1), '[DONE]');
  await g.check('sse headers');
});

test('61/63/76: a full queue answers 429 + Retry-After; queued streams get pings; queued clients that hang up are dropped unprefilled, the running one continues', async () => {
  // A model slow enough (a few ms a token) that the running request holds
  // its slot for seconds whatever the machine: the queue must stay full.
  const q = await Guard.start(['--max-running', '1', '--max-waiting', '4', '--keepalive-s', '1'],
    { modelArgs: ['--arch', 'gemma3', '--tiny', '--type', 'Q8_0', '--n-embd', '512', '--n-head', '8',
      '--head-dim', '64', '--n-ff', '2048', '--n-layer', '8'] });
  try {
    // (generous: on a loaded machine 1,900 tokens of this model take a while)
    const ref = (await req(q.base, 'POST', C, long('The running one', 1900), {}, { timeout: 180000 })).json.choices[0].text;
    const promptTok0 = (await metrics(q.base)).promptTokens;
    let started;
    const running = stream(q.base, C, long('The running one', 1900, { stream: true }), { onData: (t) => { started ??= /data: \{/.test(t) || undefined; return false; } });
    assert.ok(await until(() => started, 5000), 'the running request never streamed');
    // Four queue (raw sockets that hang up after 1.5 s), the rest are refused at once.
    const queued = [];
    for (let i = 0; i < 4; i++) {
      const body = JSON.stringify(long(`queued ${i} ` + 'y '.repeat(50), 50, { stream: i % 2 === 0 }));
      queued.push(raw(q.base, [`POST ${C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`], { timeout: 1500 }));
    }
    assert.ok(await until(async () => (await metrics(q.base)).waiting === 4, 1000), 'the queue did not fill');
    const burst = await Promise.all(Array.from({ length: 20 }, () => post(q.base, C, long('burst', 4))));
    for (const r of burst) assertError(r, 429);
    const qr = await Promise.all(queued);
    // 76: a queued stream hears SSE comment pings (--keepalive-s 1) meanwhile.
    for (let i = 0; i < 4; i += 2) {
      assert.match(qr[i].data, /^HTTP\/1\.1 200/, 'a queued stream got no headers');
      assert.match(qr[i].data, /\n: ping\n/, 'no keepalive ping while queued');
    }
    assert.ok(await until(async () => (await metrics(q.base)).waiting === 0, 1000), 'hung-up queued requests stayed queued');
    assert.equal((await metrics(q.base)).running, 1, 'the running request ended before the hang-ups: inconclusive');
    const s = await running;
    const text = sseEvents(s.text).slice(0, -1).map((e) => JSON.parse(e).choices[0]?.text ?? '').join('');
    assert.equal(text, ref, 'the running request was disturbed');
    const promptTok1 = (await metrics(q.base)).promptTokens;
    assert.ok(promptTok1 - promptTok0 < 40, `hung-up queued requests were prefilled (${promptTok1 - promptTok0} prompt tokens)`);
    // A queued request's own deadline: 504, not an endless wait. The
    // blocker asks for 1,900 tokens (300 took less than the deadline on a
    // fast engine) and hangs up once the late request has its answer.
    let lateDone = false;
    const blocker = stream(q.base, C, long('block', 1900, { stream: true }), { onData: () => lateDone });
    await sleep(100);
    const late = await post(q.base, C, long('late', 4, { timeout: 0.2 }));
    lateDone = true;
    assertError(late, [504, 503, 429]);
    if (late.status === 504) assertErrorBody(late.text, 'openai');
    await blocker;
    await q.check('queue');
  } finally {
    await q.stop();
  }
});
