// openai-image.test.mjs — the official openai npm SDK sends a PNG and a
// JPEG as image_url content parts to a polluxd with a vision tower, and
// reads streamed and whole answers; a bad image surfaces as the SDK's
// BadRequestError.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startDaemon, builddir } from '../integration/harness.mjs';

let d, client, tmp;
const image = (kind, w, h, seed) =>
  execFileSync(join(builddir, 'tests/integration/mkimage'), [kind, String(w), String(h), String(seed)]);
const url = (mime, buf) => `data:${mime};base64,${buf.toString('base64')}`;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'pxsdkimg-'));
  const mm = join(tmp, 'mm.gguf');
  execFileSync(join(builddir, 'tools/pollux-mkmodel'), ['--mmproj-only', '--type', 'F16', '-o', mm]);
  d = await startDaemon(['--mmproj', mm, '--api-key', 'sk-img']);
  client = new OpenAI({ apiKey: 'sk-img', baseURL: d.base + '/v1', maxRetries: 0 });
});

after(async () => {
  const { code } = await d.stop();
  rmSync(tmp, { recursive: true, force: true });
  assert.equal(code, 0, 'polluxd should exit 0:\n' + d.log());
});

const messages = (parts) => [{ role: 'user', content: parts }];

test('a PNG, streamed', async () => {
  const stream = await client.chat.completions.create({
    model: 'tiny', max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true },
    messages: messages([{ type: 'text', text: 'What is shown?' },
      { type: 'image_url', image_url: { url: url('image/png', image('png', 64, 48, 1)), detail: 'low' } }]),
  });
  let text = '', finish = null, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      finish = c.finish_reason ?? finish;
    }
  }
  assert.ok(text.length > 0);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 6);
  assert.ok(usage.prompt_tokens > 6, 'the image rows count as prompt tokens');
});

test('a JPEG, whole answer; same text as streamed', async () => {
  const body = {
    model: 'tiny', max_tokens: 6, temperature: 0,
    messages: messages([{ type: 'image_url', image_url: { url: url('image/jpeg', image('jpeg', 33, 57, 2)) } },
      { type: 'text', text: 'Describe it.' }]),
  };
  const whole = await client.chat.completions.create(body);
  assert.equal(whole.choices[0].finish_reason, 'length');
  let streamed = '';
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true }))
    streamed += chunk.choices[0]?.delta.content ?? '';
  assert.equal(streamed, whole.choices[0].message.content);
});

test('a corrupt image is a BadRequestError', async () => {
  await assert.rejects(client.chat.completions.create({
    model: 'tiny', max_tokens: 2,
    messages: messages([{ type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }]),
  }), (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /image|truncated|PNG/i.test(e.message));
});
