// lifecycle.test.mjs — queue limits, deadlines and SIGTERM drain, each with
// its own polluxd (these change the daemon's state for good).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './harness.mjs';

const json = { 'Content-Type': 'application/json' };
const longBody = (extra = {}) => JSON.stringify({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 1500, temperature: 0, ignore_eos: true, ...extra });

async function readAll(res) {
  let text = '';
  const dec = new TextDecoder();
  for await (const chunk of res.body) text += dec.decode(chunk, { stream: true });
  return text;
}

test('a full queue answers 429 with Retry-After, and recovers', async () => {
  const d = await startDaemon(['--max-running', '1', '--max-waiting', '1']);
  try {
    const first = await fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: longBody({ stream: true }) });
    const r1 = first.body.getReader();
    await r1.read(); // running
    const second = fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: longBody({ max_tokens: 4 }) });
    await new Promise((r) => setTimeout(r, 100)); // queued behind the first
    const third = await fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: longBody({ max_tokens: 4 }) });
    assert.equal(third.status, 429);
    assert.ok(third.headers.get('retry-after'));
    assert.equal((await third.json()).error.type, 'rate_limit_error');
    await r1.cancel();
    const s = await second;
    assert.equal(s.status, 200);
    assert.equal((await s.json()).usage.completion_tokens, 4);
  } finally {
    const { code } = await d.stop();
    assert.equal(code, 0, 'polluxd should exit 0 (a sanitizer report makes it fail):\n' + d.log());
  }
});

test('while the model loads: /ready and generation routes say 503 loading, /health 200', async () => {
  // PX_TEST_LOAD_DELAY_MS stretches the load so that the window is seen.
  const d = await startDaemon([], { env: { PX_TEST_LOAD_DELAY_MS: '1500' }, waitReady: false });
  try {
    let r = await fetch(d.base + '/ready');
    assert.equal(r.status, 503);
    assert.equal((await r.json()).status, 'loading');
    r = await fetch(d.base + '/health');
    assert.equal(r.status, 200);
    r = await fetch(d.base + '/v1/chat/completions', { method: 'POST', headers: json,
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(r.status, 503);
    const j = await r.json();
    assert.match(j.error.message, /loading/);
    assert.ok(r.headers.get('retry-after'), 'a 503 while loading should say when to retry');
    const end = Date.now() + 20000;
    while ((await fetch(d.base + '/ready')).status !== 200) {
      assert.ok(Date.now() < end, 'never became ready');
      await new Promise((res) => setTimeout(res, 50));
    }
    r = await fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: longBody({ max_tokens: 3 }) });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).usage.completion_tokens, 3);
  } finally {
    const { code } = await d.stop();
    assert.equal(code, 0, 'polluxd should exit 0:\n' + d.log());
  }
});

test('a request past its deadline gets 504, or an error event when streamed', async () => {
  // Every pass stalls 10 ms (PX_TEST_FAULTS): 1,500 tokens outlive the
  // 50 ms deadline however fast the engine is.
  const d = await startDaemon([], { env: { PX_TEST_FAULTS: 'stall_step=1,stall_every=1,stall_s=0.01' } });
  try {
    let r = await fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: longBody({ timeout: 0.05 }) });
    assert.equal(r.status, 504);
    const j = await r.json();
    assert.match(j.error.message, /deadline/);
    r = await fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: longBody({ timeout: 0.05, stream: true }) });
    assert.equal(r.status, 200);
    const events = (await readAll(r)).split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
    const last = JSON.parse(events.at(-1));
    assert.match(last.error.message, /deadline/);
    assert.ok(!events.includes('[DONE]'));
    assert.equal((await fetch(d.base + '/health')).status, 200);
  } finally {
    const { code } = await d.stop();
    assert.equal(code, 0, 'polluxd should exit 0 (a sanitizer report makes it fail):\n' + d.log());
  }
});

test('SIGTERM: in-flight streams complete, new requests are refused, exit 0', async () => {
  const d = await startDaemon(['--drain-timeout-s', '20']);
  const res = await fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: longBody({ max_tokens: 300, stream: true }) });
  const reader = res.body.getReader();
  const first = await reader.read();
  assert.ok(!first.done);
  d.proc.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  // Not ready any more: new connections are refused; a kept-alive one
  // (fetch reuses them) hears 503 from /ready, and a request on it is still
  // served, with Connection: close, because a load balancer holding the
  // connection could not send it elsewhere (it may not resend a POST).
  const probe = await fetch(d.base + '/ready').catch(() => null);
  if (probe) assert.equal(probe.status, 503);
  const late = await fetch(d.base + '/v1/completions', { method: 'POST', headers: json, body: longBody({ max_tokens: 2 }) }).catch(() => null);
  if (late) {
    assert.equal(late.status, 200);
    assert.equal((await late.json()).usage.completion_tokens, 2);
  }
  let text = new TextDecoder().decode(first.value);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  assert.match(text, /data: \[DONE\]\n\n$/);
  const chunks = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  // It exits by itself once drained (a second SIGTERM would be a 'stop now').
  const { code, sig } = await d.exited;
  await d.stop();
  assert.equal(code, 0, `exit ${code} signal ${sig}; polluxd said:\n${d.log()}`);
});
