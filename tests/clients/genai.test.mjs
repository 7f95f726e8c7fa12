// genai.test.mjs — Google's official @google/genai SDK against polluxd's
// Gemini dialect, pointed at the daemon through httpOptions.baseUrl.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { GoogleGenAI, FinishReason } from '@google/genai';
import { startDaemon } from '../integration/harness.mjs';

const MODEL = 'gemma-3-tiny';
let d, ai;

function client(apiKey, apiVersion = 'v1beta') {
  return new GoogleGenAI({ apiKey, httpOptions: { baseUrl: d.base, apiVersion } });
}

before(async () => {
  d = await startDaemon(['--api-key', 'gk-sdk', '--model-id', MODEL]);
  ai = client('gk-sdk');
});

after(async () => {
  const { code } = await d.stop();
  assert.equal(code, 0, 'polluxd should exit 0:\n' + d.log());
});

const greedy = { temperature: 0, maxOutputTokens: 12, stopSequences: [] };

test('generateContent: text, finish reason and token counts', async () => {
  const r = await ai.models.generateContent({
    model: MODEL, contents: 'Hello there',
    config: { ...greedy, systemInstruction: 'Be brief.', seed: 1, safetySettings: [{ category: 'HARM_CATEGORY_HARASSMENT', threshold: 'BLOCK_NONE' }] },
  });
  assert.equal(r.candidates.length, 1);
  const c = r.candidates[0];
  assert.equal(c.content.role, 'model');
  assert.equal(typeof r.text, 'string');
  assert.ok([FinishReason.STOP, FinishReason.MAX_TOKENS].includes(c.finishReason));
  const u = r.usageMetadata;
  assert.ok(u.candidatesTokenCount >= 1 && u.candidatesTokenCount <= 12);
  assert.equal(u.totalTokenCount, u.promptTokenCount + u.candidatesTokenCount);
  assert.equal(r.modelVersion, MODEL);
  assert.equal(typeof r.responseId, 'string');
  // countTokens counts the same prompt the generation saw.
  const ct = await ai.models.countTokens({ model: MODEL, contents: 'Hello there' });
  const plain = await ai.models.generateContent({ model: MODEL, contents: 'Hello there', config: greedy });
  assert.equal(ct.totalTokens, plain.usageMetadata.promptTokenCount);
});

test('generateContentStream: text deltas add up to the unary text (greedy)', async () => {
  const contents = [
    { role: 'user', parts: [{ text: 'Tell me' }, { text: ' a story' }] },
    { role: 'model', parts: [{ text: 'Once' }] },
    { role: 'user', parts: [{ text: 'Go on' }] },
  ];
  const config = { temperature: 0, maxOutputTokens: 10 };
  const whole = await ai.models.generateContent({ model: MODEL, contents, config });
  assert.equal(whole.candidates[0].finishReason, FinishReason.MAX_TOKENS);
  let text = '', finish, usage, n = 0;
  for await (const chunk of await ai.models.generateContentStream({ model: MODEL, contents, config })) {
    n++;
    text += chunk.text ?? '';
    if (chunk.candidates?.[0]?.finishReason) finish = chunk.candidates[0].finishReason;
    if (chunk.usageMetadata) usage = chunk.usageMetadata;
  }
  assert.ok(n >= 2, 'expected several chunks');
  assert.equal(text, whole.text);
  assert.equal(finish, FinishReason.MAX_TOKENS);
  assert.equal(usage.candidatesTokenCount, 10);
  assert.equal(usage.promptTokenCount, whole.usageMetadata.promptTokenCount);
});

test('the v1 prefix, models.get and list, and errors as ApiError', async () => {
  const v1 = client('gk-sdk', 'v1');
  const r = await v1.models.generateContent({ model: MODEL, contents: 'Hi', config: { maxOutputTokens: 3, temperature: 0 } });
  assert.ok(r.usageMetadata.candidatesTokenCount <= 3);
  const m = await ai.models.get({ model: MODEL });
  assert.equal(m.name, 'models/' + MODEL);
  assert.ok(m.inputTokenLimit > 0);
  const names = [];
  for await (const x of await ai.models.list()) names.push(x.name);
  assert.deepEqual(names, ['models/' + MODEL]);
  await assert.rejects(ai.models.generateContent({ model: 'no-such-model', contents: 'x' }),
    (e) => e.name === 'ApiError' && e.status === 404 && /NOT_FOUND/.test(e.message));
  await assert.rejects(ai.models.generateContent({ model: MODEL, contents: 'x', config: { temperature: 5 } }),
    (e) => e.name === 'ApiError' && e.status === 400 && /INVALID_ARGUMENT/.test(e.message));
  await assert.rejects(client('wrong-key').models.generateContent({ model: MODEL, contents: 'x' }),
    (e) => e.name === 'ApiError' && e.status === 401 && /UNAUTHENTICATED/.test(e.message));
  await assert.rejects(
    (async () => { for await (const _ of await client('wrong-key').models.generateContentStream({ model: MODEL, contents: 'x' })) { /* none */ } })(),
    (e) => e.name === 'ApiError' && e.status === 401);
});

test('candidateCount and logprobs', async () => {
  const r = await ai.models.generateContent({
    model: MODEL, contents: 'Pick a word',
    config: { candidateCount: 2, temperature: 1, seed: 3, maxOutputTokens: 4, responseLogprobs: true, logprobs: 2 },
  });
  assert.deepEqual(r.candidates.map((c) => c.index), [0, 1]);
  for (const c of r.candidates) {
    const lr = c.logprobsResult;
    assert.equal(lr.chosenCandidates.length, 4);
    assert.equal(lr.topCandidates.length, 4);
    assert.ok(lr.topCandidates.every((t) => t.candidates.length === 2));
    assert.ok(lr.chosenCandidates.every((t) => t.logProbability <= 0));
  }
  assert.equal(r.usageMetadata.candidatesTokenCount, 8);
});

test('chats: a multi-turn session, unary then streamed', async () => {
  const chat = ai.chats.create({ model: MODEL, config: { temperature: 0, maxOutputTokens: 5, systemInstruction: 'Be brief.' } });
  const a = await chat.sendMessage({ message: 'Hi' });
  assert.equal(typeof a.text, 'string');
  let streamed = '';
  for await (const c of await chat.sendMessageStream({ message: 'And then?' })) streamed += c.text ?? '';
  // The SDK keeps the streamed answer as one "model" content per chunk;
  // polluxd takes consecutive contents of a role as one turn.
  const h = chat.getHistory();
  assert.deepEqual(h.slice(0, 3).map((c) => c.role), ['user', 'model', 'user']);
  assert.ok(h.length >= 4 && h.slice(3).every((c) => c.role === 'model'));
  assert.equal(h.slice(3).flatMap((c) => c.parts.map((p) => p.text)).join(''), streamed);
  const third = await chat.sendMessage({ message: 'Thanks' });
  assert.ok(third.usageMetadata.promptTokenCount > a.usageMetadata.promptTokenCount);
  // The same history with the answer in one content counts the same.
  const joined = [...h.slice(0, 3), { role: 'model', parts: [{ text: streamed }] }];
  const ct1 = await ai.models.countTokens({ model: MODEL, contents: h });
  const ct2 = await ai.models.countTokens({ model: MODEL, contents: joined });
  assert.equal(ct1.totalTokens, ct2.totalTokens);
});
