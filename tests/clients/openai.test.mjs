// openai.test.mjs — the official openai npm SDK against polluxd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startDaemon } from '../integration/harness.mjs';

let d, client;

before(async () => {
  d = await startDaemon(['--api-key', 'sk-sdk']);
  client = new OpenAI({ apiKey: 'sk-sdk', baseURL: d.base + '/v1', maxRetries: 0 });
});

after(async () => {
  const { code } = await d.stop();
  assert.equal(code, 0, 'polluxd should exit 0:\n' + d.log());
});

test('chat.completions.create, not streamed', async () => {
  const r = await client.chat.completions.create({
    model: 'tiny', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }],
    max_tokens: 12, temperature: 0, seed: 1,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('chat.completions.create, streamed, with usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'tiny', messages: [{ role: 'user', content: 'Count to ten' }], max_tokens: 10,
    temperature: 0, stream: true, stream_options: { include_usage: true },
    // extra_body-style fields pass straight through
    ignore_eos: true,
  });
  let text = '', finish = null, usage = null, first = true;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (first) { assert.equal(c.delta.role, 'assistant'); first = false; }
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 10);
  const whole = await client.chat.completions.create({
    model: 'tiny', messages: [{ role: 'user', content: 'Count to ten' }], max_tokens: 10,
    temperature: 0, ignore_eos: true,
  });
  assert.equal(text, whole.choices[0].message.content);
});

test('completions.create and errors surface as SDK errors', async () => {
  const r = await client.completions.create({ model: 'tiny', prompt: 'Once upon', max_tokens: 5, temperature: 0, ignore_eos: true });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.usage.completion_tokens, 5);
  await assert.rejects(
    client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], temperature: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400);
  const bad = new OpenAI({ apiKey: 'wrong', baseURL: d.base + '/v1', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
});
