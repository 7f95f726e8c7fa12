// gguf.mjs — a small GGUF (v3) reader and writer for the hostile-model
// tests: read a valid file made by tools/pollux-mkmodel, change one thing,
// write it back. Values are kept as {type, value}; untouched ones round-trip
// byte for byte. Layout (ggml's gguf.h): "GGUF", u32 version, u64 n_tensors,
// u64 n_kv, the key/values, the tensor infos (name, n_dims, dims, type,
// offset), padding to general.alignment (32), then the tensor data.
export const T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 };
const SIZE = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

class Reader {
  constructor(b) { this.b = b; this.o = 0; }
  u32() { const v = this.b.readUInt32LE(this.o); this.o += 4; return v; }
  u64() { const v = this.b.readBigUInt64LE(this.o); this.o += 8; return v; }
  str() { const n = Number(this.u64()); const s = this.b.toString('utf8', this.o, this.o + n); this.o += n; return s; }
  scalar(t) {
    const b = this.b, o = this.o;
    this.o += SIZE[t];
    switch (t) {
      case 0: return b.readUInt8(o); case 1: return b.readInt8(o); case 2: return b.readUInt16LE(o);
      case 3: return b.readInt16LE(o); case 4: return b.readUInt32LE(o); case 5: return b.readInt32LE(o);
      case 6: return b.readFloatLE(o); case 7: return b.readUInt8(o) !== 0; case 10: return b.readBigUInt64LE(o);
      case 11: return b.readBigInt64LE(o); case 12: return b.readDoubleLE(o);
    }
    throw new Error('bad type ' + t);
  }
  value(t) {
    if (t === T.STRING) return this.str();
    if (t === T.ARRAY) {
      const et = this.u32(); const n = Number(this.u64());
      const items = [];
      for (let i = 0; i < n; i++) items.push(this.value(et));
      return { type: et, items };
    }
    return this.scalar(t);
  }
}

export function parse(buf) {
  const r = new Reader(buf);
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error('not GGUF');
  r.o = 4;
  const version = r.u32();
  const nt = Number(r.u64()), nk = Number(r.u64());
  const kv = [];
  for (let i = 0; i < nk; i++) { const key = r.str(); const type = r.u32(); kv.push({ key, type, value: r.value(type) }); }
  const tensors = [];
  for (let i = 0; i < nt; i++) {
    const name = r.str(); const nd = r.u32(); const dims = [];
    for (let k = 0; k < nd; k++) dims.push(r.u64());
    tensors.push({ name, dims, type: r.u32(), offset: r.u64() });
  }
  const al = kv.find((x) => x.key === 'general.alignment');
  const align = al ? Number(al.value) : 32;
  const dataStart = Math.ceil(r.o / align) * align;
  return { version, kv, tensors, data: buf.subarray(dataStart) };
}

class Writer {
  constructor() { this.parts = []; this.n = 0; }
  push(b) { this.parts.push(b); this.n += b.length; }
  u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); this.push(b); }
  u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v))); this.push(b); }
  str(s, len) { const b = Buffer.from(s, 'utf8'); this.u64(len ?? b.length); this.push(b); }
  scalar(t, v) {
    const b = Buffer.alloc(SIZE[t]);
    switch (t) {
      case 0: b.writeUInt8(v); break; case 1: b.writeInt8(v); break; case 2: b.writeUInt16LE(v); break;
      case 3: b.writeInt16LE(v); break; case 4: b.writeUInt32LE(v >>> 0); break; case 5: b.writeInt32LE(v | 0); break;
      case 6: b.writeFloatLE(v); break; case 7: b.writeUInt8(v ? 1 : 0); break; case 10: b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v))); break;
      case 11: b.writeBigInt64LE(BigInt.asIntN(64, BigInt(v))); break; case 12: b.writeDoubleLE(v); break;
      default: throw new Error('bad type ' + t);
    }
    this.push(b);
  }
  value(t, v) {
    if (t === T.STRING) return this.str(v);
    if (t === T.ARRAY) {
      this.u32(v.type); this.u64(v.count ?? v.items.length);
      for (const it of v.items) this.value(v.type, it);
      return;
    }
    this.scalar(t, v);
  }
}

// m: a parse() result, possibly edited; a key/value may carry keyLen or
// strLen (lengths written instead of the true ones) or raw (its value's
// bytes as written). Overrides: nTensors / nKv (header counts as written),
// align (padding used).
export function write(m, { nTensors, nKv, align } = {}) {
  const w = new Writer();
  w.push(Buffer.from('GGUF')); w.u32(m.version ?? 3);
  w.u64(nTensors ?? m.tensors.length); w.u64(nKv ?? m.kv.length);
  for (const { key, type, value, keyLen, raw, strLen } of m.kv) {
    w.str(key, keyLen); w.u32(type);
    if (raw) w.push(raw);
    else if (strLen !== undefined) w.str(value, strLen);
    else w.value(type, value);
  }
  for (const t of m.tensors) {
    w.str(t.name); w.u32(t.nDims ?? t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type); w.u64(t.offset);
  }
  const al = align ?? (() => { const a = m.kv.find((x) => x.key === 'general.alignment'); return a && Number(a.value) > 0 ? Number(a.value) : 32; })();
  const pad = (al - (w.n % al)) % al;
  w.push(Buffer.alloc(pad));
  w.push(m.data);
  return Buffer.concat(w.parts);
}

export const clone = (m) => ({ ...m, kv: m.kv.map((x) => ({ ...x, value: x.value && x.value.items ? { ...x.value, items: [...x.value.items] } : x.value })),
  tensors: m.tensors.map((t) => ({ ...t, dims: [...t.dims] })) });
export const kvOf = (m, key) => m.kv.find((x) => x.key === key);
