// http.test.mjs — attacks.md items 1-4, 8, 9, 11, 12 (the HTTP layer):
// header and URI bombs, body caps, Expect: 100-continue, non-object bodies,
// auth and path normalisation, methods and CORS, bad encodings in strings.
// Every test ends with the post-conditions (postcond.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Guard, req, post, raw, statusOf, assertError, assertErrorBody, rssKb, chat, completion, gemini, sleep } from './postcond.mjs';

let g;
before(async () => { g = await Guard.start(['--max-body-bytes', '2M']); });
after(async () => { await g.stop(); });

const GEM = '/v1beta/models/tiny:generateContent';

test('1: one 1 MiB header, then 20 000 small headers: 431 or close, memory bounded', async () => {
  const rss0 = rssKb(g.pid);
  let r = await raw(g.base, ['GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ', 'a'.repeat(1 << 20), '\r\n\r\n']);
  assert.ok([0, 431, 413, 400].includes(statusOf(r.data)), r.data.slice(0, 200));
  assert.ok(r.closed, 'the connection should be closed');
  let many = 'GET /health HTTP/1.1\r\nHost: x\r\n';
  for (let i = 0; i < 20000; i++) many += `X-H${i}: v\r\n`;
  r = await raw(g.base, [many, '\r\n']);
  assert.ok([0, 431, 413, 400].includes(statusOf(r.data)), r.data.slice(0, 200));
  assert.ok(r.closed);
  assert.ok(rssKb(g.pid) - rss0 < 16 * 1024, 'RSS grew by more than 16 MiB');
  await g.check('header bomb');
});

test('2: a 200 KB URI or query: 414/431 or close, never 200', async () => {
  for (const path of ['/health?x=' + 'a'.repeat(200000), '/v1/' + 'a'.repeat(200000),
    '/v1/chat/completions?' + 'q'.repeat(200000)]) {
    const r = await raw(g.base, [`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`]);
    assert.ok([0, 414, 431, 413, 400].includes(statusOf(r.data)), r.data.slice(0, 200));
  }
  // Just under MHD's limit but over ours (the path buffer): a JSON 414.
  const r = await req(g.base, 'GET', '/v1/models/' + 'm'.repeat(5000));
  assert.ok(r.status === 414 || r.status === 404 || r.status === 431, r.text);
  if (r.status !== 431) assertError(r, [404, 414]);
  await g.check('huge URI');
});

test('3: Content-Length 10 GiB with a 10-byte body: 413 at header time', async () => {
  const r = await raw(g.base, ['POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
    'Content-Length: 10737418240\r\n\r\n0123456789']);
  assert.equal(statusOf(r.data), 413, r.data.slice(0, 300));
  assertErrorBody(r.data.slice(r.data.indexOf('\r\n\r\n') + 4), 'openai');
  // Overflowing and negative lengths are not a number MHD or we accept.
  for (const cl of ['18446744073709551616', '-1', '99999999999999999999999']) {
    const x = await raw(g.base, [`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${cl}\r\n\r\n{}`]);
    const st = statusOf(x.data);
    assert.ok(st === 0 || (st >= 400 && st < 500), `${cl}: ${x.data.slice(0, 200)}`);
  }
  await g.check('content-length');
});

test('3: an endless chunked body: 413 at the cap and the connection closed', async () => {
  const rss0 = rssKb(g.pid);
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  const head = `${chunk.length.toString(16)}\r\n`;
  let sent = 0;
  const r = await raw(g.base, ['POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
    'Transfer-Encoding: chunked\r\n\r\n', async (s) => {
    // Up to 32x the 2 MiB cap; the server must answer or close long before.
    while (sent < 64 * 1024 * 1024 && !s.destroyed) {
      s.write(head);
      s.write(chunk);
      const ok = s.write('\r\n');
      sent += chunk.length;
      if (!ok) await new Promise((res) => { s.once('drain', res); s.once('close', res); });
    }
  }], { timeout: 10000 });
  // 413, or (libmicrohttpd < 0.9.76 cannot reply mid-body) a close at the cap.
  assert.ok([0, 413].includes(statusOf(r.data)), r.data.slice(0, 300));
  assert.ok(r.closed, 'the connection should be closed at the cap');
  assert.ok(sent <= 16 * 1024 * 1024, `the server took ${sent} bytes of a 2 MiB-capped body`);
  assert.ok(rssKb(g.pid) - rss0 < 32 * 1024, 'RSS grew by more than 32 MiB');
  await g.check('chunked body');
});

test('3: a body over the cap from a client that does not ask first: it hears the 413, no reset', async () => {
  // Content-Length and chunked, 2.5x the 2 MiB cap, sent whole: closing with
  // unread data would reset the socket before the client reads the answer.
  const body = Buffer.alloc(5 * 1024 * 1024, 0x61);
  for (let i = 0; i < 4; i++) {
    const chunked = i % 2 === 1;
    const head = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n' +
      (chunked ? 'Transfer-Encoding: chunked\r\n\r\n' : `Content-Length: ${body.length}\r\n\r\n`);
    const r = await raw(g.base, [head, chunked ? Buffer.concat([Buffer.from(body.length.toString(16) + '\r\n'), body, Buffer.from('\r\n0\r\n\r\n')]) : body],
      { timeout: 10000 });
    assert.equal(statusOf(r.data), 413, `${chunked ? 'chunked' : 'Content-Length'}: ${r.data.slice(0, 200)}`);
  }
  await g.check('413 heard');
});

test('4: Expect: 100-continue with an oversized Content-Length: 413 without 100 Continue', async () => {
  const r = await raw(g.base, ['POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
    'Content-Length: 999999999\r\nExpect: 100-continue\r\n\r\n'], { timeout: 3000 });
  assert.doesNotMatch(r.data, /100 Continue/);
  assert.equal(statusOf(r.data), 413, r.data.slice(0, 300));
  await g.check('expect 100');
});

test('8: empty and non-object bodies, truncated and BOM JSON: 400 in the route dialect', async () => {
  const bodies = ['', '"str"', '[1]', '42', 'null', 'true', '{"model":', '{', '\ufeff{"model":"x","prompt":"a"}',
    '{"a":1}garbage', '{"a":1,}', Buffer.from([0xff, 0xfe, 0x7b, 0x7d])];
  for (const b of bodies) {
    assertError(await post(g.base, '/v1/chat/completions', b), 400);
    assertError(await post(g.base, '/v1/completions', b), 400);
    assertError(await post(g.base, '/tokenize', b), 400);
    assertError(await post(g.base, GEM, b), 400, 'gemini');
    assertError(await post(g.base, '/v1beta/models/tiny:countTokens', b), 400, 'gemini');
  }
  // A multipart body is not JSON either.
  assertError(await post(g.base, '/v1/completions', '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--',
    { 'Content-Type': 'multipart/form-data; boundary=x' }), 400);
  await g.check('non-object bodies');
});

test('9: auth and path normalisation: 401/404, never an unauthenticated 200', async () => {
  const a = await Guard.start(['--api-key', 'sk-right']);
  try {
    const body = chat('hi');
    for (const h of [{}, { Authorization: 'Bearer sk-wrong' }, { Authorization: 'Bearer sk-right ' },
      { Authorization: 'Bearer  sk-right' }, { Authorization: 'bearer sk-right' }, { Authorization: 'Basic sk-right' },
      { Authorization: 'Bearer sk-righ' }, { Authorization: 'Bearer sk-rightt' }, { Authorization: 'Bearer ' },
      { 'x-api-key': 'sk-right' }]) {
      assertError(await post(a.base, '/v1/chat/completions', body, h), 401);
    }
    assertError(await post(a.base, GEM, gemini('hi'), { 'x-goog-api-key': 'nope' }), 401, 'gemini');
    assertError(await post(a.base, GEM + '?key=nope', gemini('hi')), 401, 'gemini');
    for (const p of ['//v1/chat/completions', '/v1/./chat/completions', '/v1/chat%2Fcompletions', '/V1/chat/completions',
      '/v1/chat/completions/', '/v1/chat/completions?x', '/v1//chat/completions', '/v1/chat/completions%00',
      '/v1/chat/../chat/completions', '/v1/chat/completions#x', '/%761/chat/completions', '/v1/models/../../health']) {
      const r = await raw(a.base, [`POST ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${JSON.stringify(body).length}\r\n\r\n${JSON.stringify(body)}`]);
      const st = statusOf(r.data);
      assert.ok([400, 401, 404, 405].includes(st), `${p}: ${r.data.slice(0, 200)}`);
    }
    for (const p of ['/v1/models', '/v1beta/models', '/v1beta/models/tiny', '/v1/models/tiny']) {
      const r = await req(a.base, 'GET', p);
      assert.equal(r.status, 401, p);
    }
    const ok = await post(a.base, '/v1/chat/completions', body, { Authorization: 'Bearer sk-right' });
    assert.equal(ok.status, 200);
    await a.check('auth');
  } finally {
    await a.stop();
  }
  await g.check('auth');
});

test('11: wrong methods: 405 with Allow; a preflight gets no ACAO without --cors-origin', async () => {
  for (const [m, p, dialect] of [['GET', '/v1/chat/completions'], ['PUT', '/v1/completions'], ['DELETE', '/tokenize'],
    ['POST', '/health'], ['PATCH', '/v1/models'], ['GET', GEM, 'gemini'], ['PUT', '/v1beta/models', 'gemini']]) {
    const r = await req(g.base, m, p, m === 'GET' ? undefined : '{}');
    assertError(r, 405, dialect);
    assert.ok(r.headers.allow, `${m} ${p}: no Allow header`);
  }
  const r = await req(g.base, 'OPTIONS', '/v1/chat/completions', undefined,
    { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' });
  assert.ok(r.status < 500);
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  const c = await Guard.start(['--cors-origin', 'https://ok.example']);
  try {
    const x = await req(c.base, 'OPTIONS', '/v1/chat/completions', undefined,
      { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' });
    assert.ok(x.headers['access-control-allow-origin'] === undefined || x.headers['access-control-allow-origin'] === 'https://ok.example');
    assert.notEqual(x.headers['access-control-allow-origin'], '*');
    await c.check('cors');
  } finally {
    await c.stop();
  }
  await g.check('methods');
});

test('12: invalid encodings inside strings: 400, never truncated then accepted', async () => {
  const pre = Buffer.from('{"model":"x","max_tokens":1,"prompt":"ab');
  const post_ = Buffer.from('zz"}');
  const cases = [
    Buffer.from([0xff]), Buffer.from([0xc0, 0xaf]), Buffer.from([0xe0, 0x80, 0xaf]), Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from([0xc3]), Buffer.from('\\uD800'), Buffer.from('\\uDC00\\uD800'),
    Buffer.from('\\u0000'), Buffer.from('\\uX000'), Buffer.from('\\u12'), Buffer.from('\\q'), Buffer.from([0x01]), Buffer.from('\n'), Buffer.from([0x1f]), Buffer.from('\\\x01'),
  ];
  for (const c of cases) {
    const body = Buffer.concat([pre, c, post_]);
    for (const path of ['/v1/completions', '/tokenize']) {
      const r = await post(g.base, path, body);
      assertError(r, 400);
    }
    const gb = Buffer.concat([Buffer.from('{"contents":[{"parts":[{"text":"ab'), c, Buffer.from('zz"}]}]}')]);
    assertError(await post(g.base, GEM, gb), 400, 'gemini');
  }
  // A valid surrogate pair and real multibyte text are fine.
  const okr = await post(g.base, '/tokenize', Buffer.from('{"content":"a\\uD83D\\uDE00 é €"}'));
  assert.equal(okr.status, 200, okr.text);
  await g.check('encodings');
});

test('12: the same bytes in message content, names and the model field', async () => {
  const bad = Buffer.from([0xff, 0xfe]).toString('latin1');
  const mk = (s) => Buffer.from(s, 'latin1');
  for (const b of [
    `{"model":"x","messages":[{"role":"user","content":"a${bad}"}]}`,
    `{"model":"x${bad}","messages":[{"role":"user","content":"a"}]}`,
    `{"model":"x","messages":[{"role":"user","content":[{"type":"text","text":"${bad}"}]}]}`,
    `{"model":"x","messages":[{"role":"user","content":"a"}],"stop":["${bad}"]}`,
  ]) assertError(await post(g.base, '/v1/chat/completions', mk(b)), 400);
  await sleep(10);
  await g.check('encodings 2');
});
