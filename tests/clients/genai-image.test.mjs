// genai-image.test.mjs — @google/genai with an inline PNG: a daemon with a
// random vision tower (pollux-mkmodel --mmproj-only, served with --mmproj)
// takes the image through the Gemini dialect's inlineData parts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { GoogleGenAI, FinishReason } from '@google/genai';
import { startDaemon } from '../integration/harness.mjs';

const MODEL = 'gemma-3-tiny-vision';
const builddir = process.env.PX_BUILDDIR ?? process.cwd();
let d, ai, tmp;

// CRC-32 (IEEE) for PNG chunks.
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
// A w x h RGB PNG: a colour gradient, so different images differ.
function png(w, h, shift = 0) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    const row = y * (1 + 3 * w);
    raw[row] = 0; // filter: none
    for (let x = 0; x < w; x++) {
      raw[row + 1 + 3 * x] = (x * 16 + shift) & 255;
      raw[row + 2 + 3 * x] = (y * 16) & 255;
      raw[row + 3 + 3 * x] = (x * y + shift) & 255;
    }
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'pxg-'));
  const mm = join(tmp, 'mmproj.gguf');
  // The tiny text model has n_embd 64; the tower projects to it.
  execFileSync(join(builddir, 'tools/pollux-mkmodel'), ['--mmproj-only', '--n-embd', '64', '-o', mm]);
  d = await startDaemon(['--api-key', 'gk-img', '--model-id', MODEL, '--mmproj', mm]);
  ai = new GoogleGenAI({ apiKey: 'gk-img', httpOptions: { baseUrl: d.base, apiVersion: 'v1beta' } });
});

after(async () => {
  const { code } = await d.stop();
  rmSync(tmp, { recursive: true, force: true });
  assert.equal(code, 0, 'polluxd should exit 0:\n' + d.log());
});

const imagePart = (buf) => ({ inlineData: { mimeType: 'image/png', data: buf.toString('base64') } });

test('generateContent and generateContentStream with an inline PNG', async () => {
  const contents = [{ role: 'user', parts: [{ text: 'What is in this picture?' }, imagePart(png(20, 14))] }];
  const config = { temperature: 0, maxOutputTokens: 8 };
  const text = await ai.models.countTokens({ model: MODEL, contents: 'What is in this picture?' });
  const withImage = await ai.models.countTokens({ model: MODEL, contents });
  // The image adds its embedding rows and the markers around them.
  assert.ok(withImage.totalTokens > text.totalTokens + 2, JSON.stringify({ text, withImage }));
  const r = await ai.models.generateContent({ model: MODEL, contents, config });
  assert.equal(r.candidates[0].finishReason, FinishReason.MAX_TOKENS);
  assert.equal(r.usageMetadata.promptTokenCount, withImage.totalTokens);
  assert.equal(r.usageMetadata.candidatesTokenCount, 8);
  let streamed = '', finish;
  for await (const c of await ai.models.generateContentStream({ model: MODEL, contents, config })) {
    streamed += c.text ?? '';
    if (c.candidates?.[0]?.finishReason) finish = c.candidates[0].finishReason;
  }
  assert.equal(streamed, r.text);
  assert.equal(finish, FinishReason.MAX_TOKENS);
});

test('a corrupt image and a lying mime type are INVALID_ARGUMENT', async () => {
  const bad = png(8, 8);
  bad[20] ^= 0xff; // IHDR width: the CRC no longer matches
  await assert.rejects(ai.models.generateContent({ model: MODEL, contents: [{ role: 'user', parts: [{ text: 'x' }, imagePart(bad.subarray(0, 40))] }] }),
    (e) => e.status === 400 && /INVALID_ARGUMENT/.test(e.message));
  await assert.rejects(ai.models.generateContent({ model: MODEL,
    contents: [{ role: 'user', parts: [{ text: 'x' }, { inlineData: { mimeType: 'image/jpeg', data: png(8, 8).toString('base64') } }] }] }),
    (e) => e.status === 400 && /INVALID_ARGUMENT/.test(e.message));
});
