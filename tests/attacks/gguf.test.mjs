// gguf.test.mjs — attacks.md items 47-57 (hostile model files): each file
// is the tiny model of tools/pollux-mkmodel with one thing made hostile
// (header counts, lengths, dims, types, offsets and alignment, short or
// overlapping or duplicate tensors, truncation, vocab metadata,
// hyper-parameters). polluxd must refuse it at start-up: a non-zero exit (not
// a signal), a message naming the problem, never "ready". Item 54 (the file
// replaced under a running daemon) has its own test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { builddir, startDaemon, post, completion } from './postcond.mjs';
import { parse, write, clone, kvOf, T } from './gguf.mjs';

let tmp, model, good;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'pxgguf-'));
  model = join(tmp, 'good.gguf');
  execFileSync(join(builddir, 'tools/pollux-mkmodel'), ['--arch', 'gemma3', '--tiny', '--type', 'Q8_0', '-o', model]);
  good = parse(readFileSync(model));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const freePort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

// Starts polluxd on the file; resolves {code, sig, log} once it exits
// (stopped with SIGTERM once it says ready: a file that loads).
async function run(file) {
  const port = await freePort();
  return new Promise((resolve) => {
    const p = spawn(join(builddir, 'polluxd'), ['--model', file, '--host', '127.0.0.1', '--port', String(port), '--threads', '1',
      '--kv-cache-mb', '16', '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: '' } });
    let log = '', stopping = false;
    // One SIGTERM: a second one (the draining line arrives as more data)
    // ends polluxd at once by the signal, as it should.
    p.stderr.on('data', (d) => { log += d; if (!stopping && /info: ready/.test(log)) { stopping = true; p.kill('SIGTERM'); } });
    const t = setTimeout(() => p.kill('SIGKILL'), 15000);
    p.on('exit', (code, sig) => { clearTimeout(t); resolve({ code, sig, log }); });
  });
}

let n = 0;
async function refused(name, buf, want) {
  const f = join(tmp, `bad${n++}.gguf`);
  writeFileSync(f, buf);
  const { code, sig, log } = await run(f);
  assert.equal(sig, null, `${name}: killed by ${sig}:\n${log}`);
  assert.notEqual(code, 0, `${name}: exit 0:\n${log}`);
  assert.doesNotMatch(log, /\bready\b/i, `${name}: said ready`);
  assert.doesNotMatch(log, /AddressSanitizer|runtime error|LeakSanitizer/, `${name}: sanitizer report:\n${log}`);
  assert.match(log, want, `${name}: the message does not name the problem:\n${log}`);
  rmSync(f);
}

// A file whose oddity is harmless: it loads and polluxd stops cleanly.
async function accepted(name, buf) {
  const f = join(tmp, `ok${n++}.gguf`);
  writeFileSync(f, buf);
  const { code, sig, log } = await run(f);
  assert.equal(sig, null, `${name}: ${log}`);
  assert.equal(code, 0, `${name}: ${log}`);
  assert.match(log, /info: ready/, name);
  rmSync(f);
}

const U64MAX = (1n << 64n) - 1n;
const edit = (fn) => { const m = clone(good); fn(m); return m; };
const setKv = (m, key, type, value) => {
  const k = kvOf(m, key);
  if (k) Object.assign(k, { type, value }); else m.kv.push({ key, type, value });
};
const tensor = (m, name) => m.tensors.find((t) => t.name === name);

test('the unmodified file loads (the mutations below are the only difference)', async () => {
  const d = await startDaemon([], { modelArgs: ['--arch', 'gemma3', '--tiny', '--type', 'Q8_0'] });
  await d.stop();
  writeFileSync(join(tmp, 'rt.gguf'), write(good));
  assert.deepEqual(readFileSync(join(tmp, 'rt.gguf')), readFileSync(model));
});

test('47: header counts: n_tensors / n_kv huge or wrapping', async () => {
  await refused('n_tensors 2^64-1', write(good, { nTensors: U64MAX }), /tensor/i);
  await refused('n_kv 2^64-1', write(good, { nKv: U64MAX }), /key|kv|metadata/i);
  await refused('n_tensors SIZE_MAX/64', write(good, { nTensors: U64MAX / 64n }), /tensor/i);
  await refused('n_tensors 2^32+n', write(good, { nTensors: (1n << 32n) + BigInt(good.tensors.length) }), /tensor/i);
  await refused('n_kv 2^32+n', write(good, { nKv: (1n << 32n) + BigInt(good.kv.length) }), /key|kv|metadata/i);
  await refused('n_tensors + 1', write(good, { nTensors: good.tensors.length + 1 }), /tensor|truncat|end of file|bounds/i);
  await refused('n_kv - 1', write(good, { nKv: good.kv.length - 1 }), /.+/);
});

test('48: lengths: key 2^64-1, string past the end, 2^40-element array, nested arrays; duplicate keys, bad types', async () => {
  await refused('key length 2^64-1', write(edit((m) => { m.kv[1].keyLen = U64MAX; })), /key|string|length|truncat|end/i);
  await refused('string length past the end', write(edit((m) => { m.kv[1].strLen = 1n << 40n; })), /string|length|truncat|end/i);
  await refused('array of 2^40 u8', write(edit((m) => { m.kv.push({ key: 'x.big', type: T.ARRAY, value: { type: T.U8, count: 1n << 40n, items: [] } }); })), /array|length|truncat|end/i);
  const depth = 100000;
  const nest = Buffer.alloc(depth * 12 + 12);
  for (let i = 0; i < depth; i++) { nest.writeUInt32LE(T.ARRAY, i * 12); nest.writeBigUInt64LE(1n, i * 12 + 4); }
  nest.writeUInt32LE(T.U8, depth * 12); nest.writeBigUInt64LE(0n, depth * 12 + 4);
  await refused('nested arrays 10^5 deep', write(edit((m) => { m.kv.push({ key: 'x.nest', type: T.ARRAY, raw: nest.subarray(0, depth * 12 + 12 - 4) }); })), /array|nest/i);
  await refused('duplicate key', write(edit((m) => { m.kv.push({ ...m.kv[2] }); })), /duplicate|key/i);
  await refused('unknown value type', write(edit((m) => { m.kv.push({ key: 'x.t', type: 13, raw: Buffer.alloc(8) }); })), /type/i);
  // A key with a NUL inside is a different key, not a second
  // context_length cut at the NUL: the file loads as if it were absent.
  await accepted('key with a NUL', write(edit((m) => { m.kv.push({ key: 'gemma3.context_length\u0000x', type: T.U32, value: 0 }); })));
});

test('48: an empty key is refused', async () => {
  await refused('empty key', write(edit((m) => { m.kv[1].key = ''; })), /key/i);
});

test('49: dims: n_dims 5, ne -1 / 0, ne 2^42+1 wrapping, ne[0] not a multiple of the block', async () => {
  const E = 'token_embd.weight';
  await refused('n_dims 5', write(edit((m) => { tensor(m, E).dims.push(1n, 1n, 1n); })), /dim/i);
  await refused('n_dims 0xffffffff', write(edit((m) => { tensor(m, E).nDims = 0xffffffff; })), /dim/i);
  await refused('ne -1', write(edit((m) => { tensor(m, E).dims[1] = U64MAX; })), /dim|shape|size|ne/i);
  await refused('ne 0', write(edit((m) => { tensor(m, E).dims[1] = 0n; })), /dim|shape|size|ne/i);
  await refused('ne 2^42+1 x 2', write(edit((m) => { tensor(m, E).dims = [(1n << 42n) + 1n, (1n << 42n) + 1n]; })), /dim|shape|size|overflow|ne/i);
  await refused('ne 2^63', write(edit((m) => { tensor(m, E).dims = [64n, 1n << 63n]; })), /dim|shape|size|overflow|ne/i);
  await refused('ne[0] % 32 != 0 (Q8_0)', write(edit((m) => { tensor(m, E).dims[0] = 63n; })), /block|multiple|dim|shape/i);
  await refused('shape not what the model needs', write(edit((m) => { tensor(m, 'blk.0.attn_q.weight').dims = [64n, 96n]; })), /shape|dim|attn_q/i);
});

test('50: types: GGML_TYPE_COUNT, negative, removed types', async () => {
  const E = 'blk.0.attn_q.weight';
  for (const ty of [39, 40, 1000, 0xffffffff, 4, 5, 31, 32, 33])
    await refused(`type ${ty}`, write(edit((m) => { tensor(m, E).type = ty; })), /type/i);
});

test('51: offsets and alignment', async () => {
  const last = good.tensors.at(-1).name;
  await refused('offset 2^64-1', write(edit((m) => { tensor(m, last).offset = U64MAX; })), /offset|bounds|file/i);
  await refused('offset + size wraps', write(edit((m) => { tensor(m, last).offset = U64MAX - 15n; })), /offset|bounds|file/i);
  await refused('unaligned offset', write(edit((m) => { tensor(m, last).offset += 1n; })), /align|offset/i);
  for (const [ty, v] of [[T.U32, 0], [T.U32, 3], [T.U32, 0x80000000], [T.I32, 32], [T.U64, 32n], [T.STRING, '32']]) {
    const m = edit((x) => { setKv(x, 'general.alignment', ty, v); });
    await refused(`alignment ${v} (type ${ty})`, write(m, { align: 32 }), /align/i);
  }
});

test('52/57: short, overlapping and duplicate tensors; shapes larger than their data', async () => {
  const ts = good.tensors;
  await refused('overlapping', write(edit((m) => { m.tensors[2].offset = m.tensors[1].offset; })), /overlap|offset/i);
  await refused('duplicate name', write(edit((m) => { m.tensors[3].name = m.tensors[2].name; })), /duplicate|tensor/i);
  await refused('last tensor longer than the data', write(edit((m) => { m.tensors.at(-1).dims[0] *= 4n; })), /bounds|file|size|data|shape/i);
  await refused('data shorter than the tensors', write(edit((m) => { m.data = m.data.subarray(0, m.data.length - 64); })), /bounds|file|truncat|size|data/i);
  await refused('missing tensor', write(edit((m) => { m.tensors = m.tensors.filter((t) => t.name !== ts[3].name); })), /missing|tensor|attn/i);
});

test('53: truncated files: cut 1 byte, cut mid-tensor, cut in the header', async () => {
  const b = readFileSync(model);
  for (const cut of [1, Math.floor(b.length / 2), b.length - 100, b.length - good.data.length + 10, 200, 20, 5])
    await refused(`cut to ${b.length - cut}`, b.subarray(0, b.length - cut), /bounds|truncat|end of file|short|file|tensor|read/i);
  await refused('empty file', Buffer.alloc(0), /GGUF|empty|short|magic|file/i);
  await refused('wrong magic', Buffer.concat([Buffer.from('GGML'), b.subarray(4)]), /GGUF|magic/i);
  const v = Buffer.from(b); v.writeUInt32LE(99, 4);
  await refused('version 99', v, /version/i);
});

test('55: vocab metadata: length mismatches, wrong types, special ids out of range, bad byte tokens, tiny charsmap', async () => {
  const drop = (key) => edit((m) => { const k = kvOf(m, key); k.value.items.pop(); });
  await refused('scores one short', write(drop('tokenizer.ggml.scores')), /score|vocab|token|length|mismatch/i);
  await refused('token_type one short', write(drop('tokenizer.ggml.token_type')), /type|vocab|token|length|mismatch/i);
  await refused('scores typed u8', write(edit((m) => { const k = kvOf(m, 'tokenizer.ggml.scores'); k.value = { type: T.U8, items: k.value.items.map(() => 0) }; })), /score|type/i);
  await refused('tokens typed u32', write(edit((m) => { const k = kvOf(m, 'tokenizer.ggml.tokens'); k.value = { type: T.U32, items: k.value.items.map(() => 0) }; })), /token|type/i);
  for (const key of ['tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id', 'tokenizer.ggml.unknown_token_id', 'tokenizer.ggml.padding_token_id']) {
    await refused(`${key} = n_vocab`, write(edit((m) => { setKv(m, key, T.U32, 1536); })), /token|id|vocab|range/i);
    await refused(`${key} = 2^32-1`, write(edit((m) => { setKv(m, key, T.U32, 0xffffffff); })), /token|id|vocab|range/i);
    await refused(`${key} typed string`, write(edit((m) => { setKv(m, key, T.STRING, '2'); })), /token|id|type/i);
  }
  for (const bad of ['<0x-1>', '<0xZZ>', '<0x100>', '<0x>', '<0x4>']) {
    await refused(`byte token ${bad}`, write(edit((m) => {
      const toks = kvOf(m, 'tokenizer.ggml.tokens').value.items; const types = kvOf(m, 'tokenizer.ggml.token_type').value.items;
      const i = types.indexOf(6); toks[i] = bad;
    })), /byte|token/i);
  }
  // polluxd has no UGM tokenizer and never reads precompiled_charsmap: a
  // 1-3 byte one is ignored (loads), so it cannot be misread.
  for (const len of [1, 2, 3])
    await accepted(`precompiled_charsmap of ${len} bytes`, write(edit((m) => { setKv(m, 'tokenizer.ggml.precompiled_charsmap', T.ARRAY, { type: T.U8, items: Array(len).fill(1) }); })));
  await refused('empty vocab', write(edit((m) => { for (const k of ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type']) kvOf(m, k).value.items = []; })), /vocab|token|empty/i);
  await refused('unknown tokenizer model', write(edit((m) => { setKv(m, 'tokenizer.ggml.model', T.STRING, 'nope'); })), /tokenizer|model/i);
  await refused('token_type out of range', write(edit((m) => { kvOf(m, 'tokenizer.ggml.token_type').value.items[10] = 99; })), /type|token/i);
  await refused('vocab larger than the embedding', write(edit((m) => {
    for (const k of ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type']) {
      const it = kvOf(m, k).value.items; it.push(k.endsWith('tokens') ? 'extra' : k.endsWith('type') ? 1 : 0);
    }
  })), /vocab|embd|embedding|token|shape/i);
});

test('56: hyper-parameters: zero, huge, indivisible, NaN', async () => {
  const A = 'gemma3.';
  const cases = [
    ['block_count', T.U32, 0], ['block_count', T.U32, 1000000], ['attention.head_count', T.U32, 0],
    ['attention.head_count', T.U32, 5], ['attention.head_count_kv', T.U32, 0], ['attention.head_count_kv', T.U32, 3],
    ['context_length', T.U64, 1n << 32n], ['context_length', T.U32, 0xffffffff], ['context_length', T.U32, 0],
    ['embedding_length', T.U32, 0], ['embedding_length', T.U32, 63], ['feed_forward_length', T.U32, 0],
    ['attention.key_length', T.U32, 0], ['attention.key_length', T.U32, 1 << 30],
    ['rope.freq_base', T.F32, NaN], ['rope.freq_base', T.F32, Infinity], ['rope.freq_base', T.F32, -1],
    ['attention.layer_norm_rms_epsilon', T.F32, NaN], ['attention.layer_norm_rms_epsilon', T.F32, -1],
    ['attention.sliding_window', T.U32, 0xffffffff], ['block_count', T.I32, -1], ['block_count', T.STRING, '7'],
  ];
  for (const [k, ty, v] of cases)
    await refused(`${k} = ${String(v)}`, write(edit((m) => { setKv(m, A + k, ty, v); })), new RegExp(k.split('.').at(-1).split('_')[0] + '|' + k.replace('.', '\\.') + '|head|dim|shape|type|range|invalid', 'i'));
  await refused('missing block_count', write(edit((m) => { m.kv = m.kv.filter((x) => x.key !== A + 'block_count'); })), /block_count|missing/i);
  await refused('unknown architecture', write(edit((m) => { setKv(m, 'general.architecture', T.STRING, 'nope'); })), /architecture|nope/i);
});

test('54: the model file replaced by rename() under a running daemon: served unchanged', async (t) => {
  const d = await startDaemon(['--model-id', 'tiny'], { modelArgs: ['--arch', 'gemma3', '--tiny', '--type', 'Q8_0'] });
  try {
    const before_ = await post(d.base, '/v1/completions', completion('x', { max_tokens: 8 }));
    assert.equal(before_.status, 200);
    // Deploy by rename(): a new (here: broken) file takes the served path.
    const served = d.proc.spawnargs[d.proc.spawnargs.indexOf('--model') + 1];
    const fresh = join(tmp, 'fresh.gguf');
    writeFileSync(fresh, Buffer.alloc(16));
    renameSync(fresh, served);
    const after_ = await post(d.base, '/v1/completions', completion('x', { max_tokens: 8 }));
    assert.equal(after_.status, 200);
    assert.equal(after_.json.choices[0].text, before_.json.choices[0].text, 'rename() under the daemon changed its output');
    // Truncating the mapped inode in place is not defended (SIGBUS is
    // possible; README.md), so it is not done here.
    t.diagnostic('rename() deploy: served unchanged; in-place truncation documented, not exercised');
  } finally {
    const r = await d.stop();
    assert.equal(r.code, 0);
  }
});
