// images.test.mjs — attacks.md items 36-46 (images in data URLs and
// Gemini inlineData): degenerate sizes, decompression bombs, overflowing
// dimensions, scan bombs, corrupt and mutated files, format confusion,
// remote and file URLs, image counts and token budgets, a large valid image
// and many decodes at once. Images are written here (PNG by hand with
// node:zlib) or by tests/integration/mkimage. Post-conditions after each.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Guard, post, raw, sleep, assertError, builddir, metrics, rssKb } from './postcond.mjs';

let g, tmp;
before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'pxatk-'));
  const mm = join(tmp, 'mm.gguf');
  execFileSync(join(builddir, 'tools/pollux-mkmodel'), ['--mmproj-only', '--type', 'F16', '-o', mm]);
  g = await Guard.start(['--mmproj', mm, '--max-images', '3', '--max-image-pixels', '13000000', '--ctx', '512']);
});
after(async () => {
  await g.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const C = '/v1/chat/completions';
const GEM = '/v1beta/models/tiny:generateContent';
const mkimage = (kind, w, h, seed = 1) =>
  execFileSync(join(builddir, 'tests/integration/mkimage'), [kind, String(w), String(h), String(seed)], { maxBuffer: 1 << 28 });
const url = (mime, buf) => `data:${mime};base64,${buf.toString('base64')}`;
const withImages = (...urls) => ({ model: 'x', max_tokens: 2, temperature: 0,
  messages: [{ role: 'user', content: [{ type: 'text', text: 'see' }, ...urls.map((u) => ({ type: 'image_url', image_url: { url: u } }))] }] });
const gemImage = (mimeType, buf) => ({ contents: [{ parts: [{ text: 'see' }, { inlineData: { mimeType, data: buf.toString('base64') } }] }],
  generationConfig: { maxOutputTokens: 2 } });

// --- a PNG writer ---------------------------------------------------------
const CRC = new Int32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c; });
function crc32(buf) {
  let c = -1;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
// w x h, bit depth, colour type; rows: how many rows of zeros to store
// (fewer than h makes a lying or truncated file).
function png(w, h, { depth = 8, ctype = 2, rows = h, idat } = {}) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = depth; ihdr[9] = ctype;
  const ch = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[ctype];
  const stride = 1 + Math.ceil((w * ch * depth) / 8);
  const data = idat ?? deflateSync(Buffer.alloc(Math.min(rows, h) * stride));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', data), chunk('IEND', Buffer.alloc(0))]);
}

// A JPEG's SOF: its height and width fields rewritten.
function jpegResize(buf, w, h) {
  const b = Buffer.from(buf);
  for (let i = 2; i + 9 < b.length;) {
    if (b[i] !== 0xff) break;
    const m = b[i + 1];
    const len = b.readUInt16BE(i + 2);
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      b.writeUInt16BE(h, i + 5); b.writeUInt16BE(w, i + 7);
      return b;
    }
    i += 2 + len;
  }
  throw new Error('no SOF');
}

async function expect400(body, path = C, dialect = 'openai', status = [400, 413, 415]) {
  const r = await post(g.base, path, body);
  assertError(r, status, dialect);
  return r;
}

test('36: degenerate sizes: 1x1, 1x4000, 4000x1 processed or 400; 0xN and Nx0 400', async () => {
  for (const [w, h] of [[1, 1], [1, 4000], [4000, 1], [2, 3000]]) {
    const r = await post(g.base, C, withImages(url('image/png', png(w, h))));
    if (r.status !== 200) assertError(r, 400);
    const j = await post(g.base, C, withImages(url('image/jpeg', mkimage('jpeg', w, h))));
    if (j.status !== 200) assertError(j, 400);
  }
  for (const [w, h] of [[0, 16], [16, 0], [0, 0]]) {
    await expect400(withImages(url('image/png', png(w, h, { idat: deflateSync(Buffer.alloc(16)) }))));
    await expect400(withImages(url('image/jpeg', jpegResize(mkimage('jpeg', 16, 16), w, h))));
  }
  await g.check('degenerate sizes');
});

test('37/38: decompression bombs and overflowing dims: 400 after the header probe, RSS flat', async () => {
  const rss0 = rssKb(g.pid);
  const bombs = [
    ['image/png', png(65535, 65535, { rows: 4 })],
    ['image/png', png(20000, 20000, { rows: 64 })],
    ['image/png', png(32768, 16384, { depth: 16, ctype: 6, rows: 1 })],
    ['image/png', png(0x7fffffff, 0x7fffffff, { rows: 0 })],
    ['image/png', png(0xffffffff, 1, { rows: 0 })],
    ['image/png', png(8193, 8, { rows: 8 })],
    ['image/jpeg', jpegResize(mkimage('jpeg', 64, 64), 65500, 65500)],
    ['image/jpeg', jpegResize(mkimage('jpeg', 64, 64), 65535, 1)],
  ];
  for (const [mime, buf] of bombs) {
    assert.ok(buf.length < 64 * 1024);
    const t0 = Date.now();
    await expect400(withImages(url(mime, buf)));
    await expect400(gemImage(mime, buf), GEM, 'gemini');
    assert.ok(Date.now() - t0 < 2000, 'refused too slowly: decoded before the probe?');
  }
  assert.ok(rssKb(g.pid) - rss0 < 64 * 1024, 'RSS grew by more than 64 MiB');
  await g.check('bombs');
});

test('39: a JPEG with thousands of scans: 400 within 2 s', async () => {
  // Baseline -> progressive (SOF2), its scan made DC-only and repeated.
  const base = mkimage('jpeg', 512, 512);
  let i = 2, sos = -1;
  const b = Buffer.from(base);
  while (i < b.length) {
    const m = b[i + 1];
    if (m === 0xc0) b[i + 1] = 0xc2;
    if (m === 0xda) { sos = i; break; }
    i += 2 + b.readUInt16BE(i + 2);
  }
  const sosLen = b.readUInt16BE(sos + 2);
  b[sos + 2 + sosLen - 3] = 0; // Ss
  b[sos + 2 + sosLen - 2] = 0; // Se
  const eoi = b.lastIndexOf(Buffer.from([0xff, 0xd9]));
  const scan = b.subarray(sos, eoi);
  const parts = [b.subarray(0, sos)];
  for (let k = 0; k < 3000 && parts.length * scan.length < 8 << 20; k++) parts.push(scan);
  parts.push(Buffer.from([0xff, 0xd9]));
  const bomb = Buffer.concat(parts);
  const t0 = Date.now();
  await expect400(withImages(url('image/jpeg', bomb)));
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  await g.check('scan bomb');
});

test('40: corrupt and truncated files, and random mutations of valid seeds: 400 fast, never 5xx', async () => {
  const good = png(64, 48, { idat: deflateSync(Buffer.alloc(48 * (1 + 64 * 3), 7)) });
  const badCrc = Buffer.from(good); badCrc[33 + 8] ^= 0xff; // a byte of IDAT's data
  const truncIdat = png(64, 48, { rows: 10 });
  const jpg = mkimage('jpeg', 64, 48);
  const noEoi = jpg.subarray(0, jpg.length - 2);
  const cutJpg = jpg.subarray(0, Math.floor(jpg.length / 2));
  for (const [mime, buf] of [['image/png', badCrc], ['image/png', truncIdat], ['image/png', good.subarray(0, 40)],
    ['image/jpeg', cutJpg], ['image/jpeg', jpg.subarray(0, 4)], ['image/png', Buffer.alloc(0)]]) {
    await expect400(withImages(url(mime, buf)));
  }
  // A JPEG without EOI but with all its scan data is decodable or a 400.
  const r = await post(g.base, C, withImages(url('image/jpeg', noEoi)));
  if (r.status !== 200) assertError(r, 400);
  // Seeded mutations (a fuzz target covers this at depth).
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  const seeds = [['image/png', good], ['image/jpeg', jpg], ['image/png', mkimage('png', 40, 30)]];
  const t0 = Date.now();
  for (let k = 0; k < 120; k++) {
    const [mime, s] = seeds[k % seeds.length];
    const m = Buffer.from(s);
    for (let n = 1 + (rnd() % 8); n > 0; n--) m[rnd() % m.length] = rnd() & 0xff;
    const x = await post(g.base, C, withImages(url(mime, m)));
    if (x.status !== 200) assertError(x, [400, 413, 415]);
  }
  assert.ok(Date.now() - t0 < 20000);
  await g.check('corrupt');
});

test('41: format confusion: only the declared format by magic bytes; other formats 400/415', async () => {
  const jpg = mkimage('jpeg', 32, 32);
  const p = mkimage('png', 32, 32);
  const gif1 = Buffer.from('474946383961010001008000' + 'ffffff000000' + '21f90401000000002c00000000010001000002024401003b', 'hex');
  const gif2 = Buffer.concat([gif1.subarray(0, gif1.length - 1), gif1.subarray(18, gif1.length)]); // two frames
  const others = [
    Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)]), // BMP
    Buffer.from('000002000000000000000000100010001800', 'hex'), // TGA
    Buffer.from('#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 16 +X 16\n'), // HDR
    Buffer.concat([Buffer.from('8BPS'), Buffer.alloc(40)]), // PSD
    Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
    Buffer.from('P6\n16 16\n255\n'), // PPM
    Buffer.concat([Buffer.from([0, 0, 0, 0x0c]), Buffer.from('jP  \r\n\x87\n', 'latin1'), Buffer.alloc(20)]), // JPEG 2000
  ];
  for (const [mime, buf] of [['image/png', jpg], ['image/jpeg', p], ['image/png', gif1], ['image/webp', p], ['image/gif', jpg]])
    await expect400(withImages(url(mime, buf)));
  for (const buf of others) {
    for (const mime of ['image/png', 'image/jpeg', 'image/bmp', 'image/svg+xml', 'application/octet-stream']) {
      await expect400(withImages(url(mime, buf)));
      await expect400(gemImage(mime, buf), GEM, 'gemini');
    }
  }
  // GIF is accepted as GIF (first frame only, documented); animated too.
  for (const buf of [gif1, gif2]) {
    const r = await post(g.base, C, withImages(url('image/gif', buf)));
    if (r.status !== 200) assertError(r, 400);
  }
  await g.check('format confusion');
});

test('43: remote and file URLs are refused without any outbound connection', async () => {
  let connections = 0;
  const trap = createServer((s) => { connections++; s.destroy(); });
  await new Promise((r) => trap.listen(0, '127.0.0.1', r));
  const port = trap.address().port;
  try {
    for (const u of ['http://169.254.169.254/latest/meta-data/', `http://127.0.0.1:${port}/x.png`, `http://localhost:${port}/x.png`,
      'http://[::1]/x.png', 'http://2130706433/x.png', 'http://0x7f000001/x.png', 'http://10.0.0.1/x.png', 'https://example.com/x.png',
      'file:///etc/passwd', 'file://../x', '/etc/passwd', '../../etc/passwd', 'ftp://127.0.0.1/x', 'gopher://127.0.0.1:70/_x',
      'data:image/png,not-base64', 'data:;base64,AAAA', 'data:image/png;base64', 'javascript:alert(1)']) {
      await expect400(withImages(u));
    }
    const gem = { contents: [{ parts: [{ text: 'x' }, { fileData: { mimeType: 'image/png', fileUri: `http://127.0.0.1:${port}/x.png` } }] }] };
    await expect400(gem, GEM, 'gemini');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(connections, 0, 'polluxd connected out');
  } finally {
    trap.close();
  }
  await g.check('URLs');
});

test('44: too many images, or images over the context: 400 before the vision encoder runs', async () => {
  const p = url('image/png', mkimage('png', 48, 32));
  const enc = async () => (await metrics(g.base)).imagesEncoded;
  const before_ = await enc();
  await expect400(withImages(...Array(50).fill(p)));
  await expect400(withImages(p, p, p, p));
  const gem = { contents: [{ parts: Array.from({ length: 50 }, () => ({ inlineData: { mimeType: 'image/png', data: p.split(',')[1] } })) }] };
  await expect400(gem, GEM, 'gemini');
  // Text that fills the context, plus one image: over the context.
  const long = withImages(p);
  long.messages[0].content[0].text = 'word '.repeat(505);
  const r = await expect400(long);
  assert.equal(r.json.error.code, 'context_length_exceeded');
  assert.equal(await enc(), before_, 'the vision encoder ran for a refused request');
  await g.check('image count');
});

test('45: a large valid image is resized within a memory budget', async () => {
  const big = mkimage('jpeg', 4000, 3000, 9);
  const rss0 = rssKb(g.pid);
  const r = await post(g.base, C, withImages(url('image/jpeg', big)));
  assert.equal(r.status, 200, r.text);
  assert.ok(rssKb(g.pid) - rss0 < 128 * 1024, 'RSS grew by more than 128 MiB after the request');
  // Over the pixel limit (13 Mpx here): 413/400.
  await expect400(withImages(url('image/jpeg', jpegResize(big, 4000, 4000))));
  await g.check('large image');
});

test('46: 64 parallel requests with large images: bounded, excess 429 with Retry-After, no 5xx', async () => {
  const img = url('image/jpeg', mkimage('jpeg', 2000, 2000, 4));
  const rs = await Promise.all(Array.from({ length: 64 }, () => post(g.base, C, withImages(img))));
  let ok = 0, busy = 0;
  for (const r of rs) {
    if (r.status === 200) ok++;
    else { assertError(r, [429, 503]); busy++; }
  }
  assert.ok(ok >= 16, `only ${ok} served`);
  assert.ok(busy > 0, 'no request was told to retry: decodes queue without bound');
  await g.check('decode concurrency');
});

test('46b: clients that hang up while their images decode: no leak (LeakSanitizer at exit), the server serves on', async () => {
  // Found by bench/soak.mjs: a peer gone when the decode finished left the
  // job, its request and the decoded pixels behind.
  const body = JSON.stringify(withImages(url('image/jpeg', mkimage('jpeg', 3000, 3000, 5))));
  const head = `POST ${C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
  for (const after of [0, 10, 30, 60, 100, 150, 250, 400]) {
    await raw(g.base, [async (s) => { s.write(head); s.write(body); await sleep(after); s.destroy(); }], { timeout: 5000 });
  }
  // Several at once, so some wait in the decode queue when they go.
  await Promise.all([5, 20, 40, 80, 120, 200].map((after) =>
    raw(g.base, [async (s) => { s.write(head); s.write(body); await sleep(after); s.destroy(); }], { timeout: 5000 })));
  await sleep(1500); // the decodes finish
  const r = await post(g.base, C, withImages(url('image/jpeg', mkimage('jpeg', 300, 200, 6))));
  assert.equal(r.status, 200, r.text);
  await g.check('hang-ups during decoding');
});
