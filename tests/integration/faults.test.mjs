// faults.test.mjs — engine faults injected into polluxd (PX_TEST_FAULTS,
// scheduler/sched.h px_sched_faults; steps are forward passes from 1): the
// request a fault hits ends with an error (the last SSE event, or a 500 in
// OpenAI shape), a concurrent canary gets its normal output, the KV blocks
// go back to idle and the daemon serves on. Each test has its own daemon,
// since a fault fires once. The watchdog side is watchdog.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './harness.mjs';

const json = { 'Content-Type': 'application/json' };
const victimBody = (extra = {}) => JSON.stringify({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 60, temperature: 0, ignore_eos: true, ...extra });
const canaryBody = JSON.stringify({ model: 'tiny', prompt: 'The canary sings', max_tokens: 12, temperature: 0, ignore_eos: true });

// Splits an SSE body into its data payloads as they arrive; first() resolves
// on the first one, all() at the end of the stream.
function sseReader(res) {
  const dec = new TextDecoder();
  const events = [];
  let gotFirst;
  const first = new Promise((r) => { gotFirst = r; });
  const all = (async () => {
    let buf = '';
    for await (const chunk of res.body) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        for (const line of buf.slice(0, i).split('\n'))
          if (line.startsWith('data: ')) { events.push(line.slice(6)); gotFirst(); }
        buf = buf.slice(i + 2);
      }
    }
    gotFirst();
    return events;
  })();
  return { first, all };
}

async function completion(base, body) {
  const r = await fetch(base + '/v1/completions', { method: 'POST', headers: json, body });
  return { status: r.status, json: await r.json() };
}

// Waits (boundedly) for the KV blocks to be back to idle: none used, no
// request running or waiting.
async function expectIdle(base) {
  const get = (t, name, label) => {
    const re = new RegExp('^' + name.replace(/:/g, '\\:') + '\\{[^}]*' + (label ?? '') + '[^}]*\\} (\\S+)$', 'm');
    const m = re.exec(t);
    return m ? Number(m[1]) : NaN;
  };
  const end = Date.now() + 10000;
  for (;;) {
    const t = await (await fetch(base + '/metrics')).text();
    const used = get(t, 'pollux:kv_blocks', 'state="used"');
    const running = get(t, 'pollux:num_requests_running');
    const waiting = get(t, 'pollux:num_requests_waiting');
    if (used === 0 && running === 0 && waiting === 0) return t;
    assert.ok(Date.now() < end, `not idle: kv used ${used}, running ${running}, waiting ${waiting}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function expectModelError(err) {
  assert.equal(err.type, 'server_error');
  assert.equal(err.message, 'internal error in the model');
}

test('a failed step ends the stream it hit with an error event; a queued canary is unaffected', async () => {
  // max_running 1: the canary waits while the victim runs; pass 3 (the
  // victim's second decode) fails.
  const d = await startDaemon(['--max-running', '1'], { env: { PX_TEST_FAULTS: 'fail_step=3' } });
  try {
    assert.match(d.log(), /PX_TEST_FAULTS: injecting/);
    const res = await fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: victimBody({ stream: true }) });
    assert.equal(res.status, 200);
    const victim = sseReader(res);
    await victim.first;
    const canary = completion(d.base, canaryBody);
    const events = await victim.all; // the stream closes after the error
    const last = JSON.parse(events.at(-1));
    assert.ok(last.error, 'the last event is an error: ' + events.at(-1));
    expectModelError(last.error);
    assert.ok(!events.includes('[DONE]'));
    assert.ok(events.length <= 3, `at most the 2 tokens before the failed pass, then the error (${events.length} events)`);
    const c = await canary;
    assert.equal(c.status, 200);
    assert.equal(c.json.usage.completion_tokens, 12);
    // The same request once the fault is past: the canary's output was the
    // normal one.
    const again = await completion(d.base, canaryBody);
    assert.equal(again.status, 200);
    assert.equal(c.json.choices[0].text, again.json.choices[0].text);
    await expectIdle(d.base);
    assert.equal((await fetch(d.base + '/health')).status, 200);
    // And the victim's request, run again, completes.
    const v = await completion(d.base, victimBody());
    assert.equal(v.status, 200);
    assert.equal(v.json.usage.completion_tokens, 60);
  } finally {
    const { code } = await d.stop();
    assert.equal(code, 0, 'polluxd should exit 0 (a sanitizer report makes it fail):\n' + d.log());
  }
});

test('a failed step answers a non-streamed request 500 in OpenAI shape', async () => {
  const d = await startDaemon([], { env: { PX_TEST_FAULTS: 'fail_step=2' } });
  try {
    const r = await fetch(d.base + '/v1/chat/completions', { method: 'POST', headers: json,
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 20, temperature: 0 }) });
    assert.equal(r.status, 500);
    assert.match(r.headers.get('content-type'), /application\/json/);
    const j = await r.json();
    expectModelError(j.error);
    assert.ok('code' in j.error && 'param' in j.error, 'OpenAI error shape: ' + JSON.stringify(j));
    await expectIdle(d.base);
    const ok = await completion(d.base, canaryBody);
    assert.equal(ok.status, 200);
    assert.equal(ok.json.usage.completion_tokens, 12);
  } finally {
    const { code } = await d.stop();
    assert.equal(code, 0, 'polluxd should exit 0:\n' + d.log());
  }
});

test('a NaN logits row ends only its request; the canary in the same batch completes normally', async () => {
  // Pass 2 stalls for a second so that the canary, sent meanwhile, is in
  // the batch of pass 4 with the victim; the victim, older, has row 0.
  const d = await startDaemon([], { env: { PX_TEST_FAULTS: 'stall_step=2,stall_s=1,nan_step=4,nan_row=0' } });
  try {
    const res = await fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: victimBody({ stream: true }) });
    const victim = sseReader(res);
    await victim.first;
    const canary = completion(d.base, canaryBody);
    const events = await victim.all;
    const last = JSON.parse(events.at(-1));
    assert.ok(last.error, 'the last event is an error: ' + events.at(-1));
    expectModelError(last.error);
    assert.ok(!events.includes('[DONE]'));
    const c = await canary;
    assert.equal(c.status, 200);
    assert.equal(c.json.usage.completion_tokens, 12);
    const again = await completion(d.base, canaryBody);
    assert.equal(c.json.choices[0].text, again.json.choices[0].text);
    const t = await expectIdle(d.base);
    assert.match(t, /pollux:.*finished_reason="error".* [1-9]/, 'the error is counted:\n' + t);
    assert.equal((await fetch(d.base + '/health')).status, 200);
  } finally {
    const { code } = await d.stop();
    assert.equal(code, 0, 'polluxd should exit 0:\n' + d.log());
  }
});

test('a malformed fault plan is ignored with a warning', async () => {
  const d = await startDaemon([], { env: { PX_TEST_FAULTS: 'fail_step=1,bogus=2' } });
  try {
    assert.match(d.log(), /PX_TEST_FAULTS ignored: unknown key 'bogus'/);
    const r = await completion(d.base, canaryBody);
    assert.equal(r.status, 200);
  } finally {
    const { code } = await d.stop();
    assert.equal(code, 0, 'polluxd should exit 0:\n' + d.log());
  }
});
