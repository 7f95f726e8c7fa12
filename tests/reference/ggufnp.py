"""ggufnp.py: a GGUF (v2/v3) reader and dequantizer in plain numpy.

Part of pollux's reference test: it shares no code with the C engine, so the
numpy forward pass in ref.py checks pollux against an independent reading of
the same file. Written from the GGUF spec and ggml's block layouts:

  file   = "GGUF", u32 version (2|3), u64 n_tensors, u64 n_kv,
           n_kv x (string key, u32 value type, value),
           n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type,
                        u64 offset relative to the data section),
           zero padding to general.alignment (default 32), tensor data.
  string = u64 byte length + UTF-8 bytes; array = u32 elem type + u64 n + elems.
  ne[0] is the innermost dimension: a tensor with ne = [n_in, n_out] is a
  row-major (n_out, n_in) matrix, which is the numpy shape tensor() returns.

Block layouts (little-endian, f16 scales), x = dequantized value:
  Q8_0  34 B / 32: d, qs[32] int8                         x = d*q
  Q4_0  18 B / 32: d, qs[16]; low nibbles elems 0..15,    x = d*(q-8)
                   high nibbles elems 16..31
  Q5_0  22 B / 32: d, qh u32 (bit j = 5th bit of elem j), qs[16] as Q4_0;
                                                          x = d*(q-16)
  Q4_K 144 B /256: d, dmin, scales[12] (8 six-bit scales + 8 six-bit mins),
                   qs[128]; 64-element chunk c takes qs[32c..32c+32), low
                   nibbles = sub-block 2c, high nibbles = sub-block 2c+1;
                                                          x = d*sc*q - dmin*m
  Q5_K 176 B /256: d, dmin, scales[12], qh[32] (bit s of qh[l] = 5th bit of
                   element l of sub-block s), qs[128] as Q4_K
  Q6_K 210 B /256: ql[128], qh[64], scales[16] int8, d; element e has scale
                   scales[e/16]; see _deq_q6_k.               x = d*sc*(q-32)

Use:  g = GGUF(path); g.kv["gemma3.block_count"]; g.tensor("blk.0.attn_q.weight")
      python3 ggufnp.py info FILE      lists metadata and tensors
      python3 ggufnp.py selftest       checks the vectorised dequantizers
"""

import struct
import sys

import numpy as np

# ggml type ids -> (name, elements per block, bytes per block)
TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    30: ("BF16", 1, 2),
}
TYPE_IDS = {v[0]: k for k, v in TYPES.items()}

# GGUF metadata value types: id -> struct format (None: string/array)
_VT_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
           7: "<?", 8: None, 9: None, 10: "<Q", 11: "<q", 12: "<d"}
_VT_NP = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4",
          6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}


class GGUFError(Exception):
    pass


class TensorInfo:
    def __init__(self, name, ne, type_id, offset):
        self.name = name
        self.ne = ne            # list, ne[0] innermost
        self.type_id = type_id
        self.offset = offset    # absolute file offset once parsed
        name_, be, bb = TYPES[type_id]
        self.type_name = name_
        n = 1
        for d in ne:
            n *= d
        if ne[0] % be:
            raise GGUFError("%s: row of %d not a multiple of %s block %d"
                            % (name, ne[0], name_, be))
        self.n_elems = n
        self.nbytes = n // be * bb

    @property
    def shape(self):
        """numpy shape: ne reversed, trailing unit dimensions of ne dropped."""
        ne = list(self.ne)
        while len(ne) > 1 and ne[-1] == 1:
            ne.pop()
        return tuple(reversed(ne))


class GGUF:
    """A parsed GGUF file: .version, .kv (dict), .tensors (dict of TensorInfo,
    in file order), .alignment. Tensor data stays in a read-only memmap."""

    def __init__(self, path):
        self.path = path
        self.mm = np.memmap(path, dtype=np.uint8, mode="r")
        self.buf = memoryview(self.mm)
        self.pos = 0
        if bytes(self.buf[0:4]) != b"GGUF":
            raise GGUFError("%s: bad magic" % path)
        self.pos = 4
        self.version = self._u32()
        if self.version not in (2, 3):
            raise GGUFError("%s: unsupported GGUF version %d" % (path, self.version))
        n_tensors = self._u64()
        n_kv = self._u64()
        self.kv = {}
        self.kv_types = {}
        for _ in range(n_kv):
            key = self._str()
            vt = self._u32()
            self.kv_types[key] = vt
            self.kv[key] = self._value(vt)
        infos = []
        for _ in range(n_tensors):
            name = self._str()
            n_dims = self._u32()
            if not 1 <= n_dims <= 4:
                raise GGUFError("%s: %d dims" % (name, n_dims))
            ne = [self._u64() for _ in range(n_dims)]
            t = self._u32()
            if t not in TYPES:
                raise GGUFError("%s: unknown type %d" % (name, t))
            off = self._u64()
            infos.append(TensorInfo(name, ne, t, off))
        self.alignment = int(self.kv.get("general.alignment", 32))
        data_start = (self.pos + self.alignment - 1) // self.alignment * self.alignment
        self.data_start = data_start
        self.tensors = {}
        for ti in infos:
            if ti.offset % self.alignment:
                raise GGUFError("%s: misaligned offset" % ti.name)
            ti.offset += data_start
            if ti.offset + ti.nbytes > len(self.mm):
                raise GGUFError("%s: data past end of file" % ti.name)
            self.tensors[ti.name] = ti

    # --- primitive readers over the mapping ---
    def _take(self, n):
        if self.pos + n > len(self.buf):
            raise GGUFError("%s: truncated" % self.path)
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def _u32(self):
        return struct.unpack("<I", self._take(4))[0]

    def _u64(self):
        return struct.unpack("<Q", self._take(8))[0]

    def _str(self):
        n = self._u64()
        return bytes(self._take(n)).decode("utf-8", errors="replace")

    def _value(self, vt):
        if vt == 8:
            return self._str()
        if vt == 9:
            et = self._u32()
            n = self._u64()
            if et in _VT_NP:
                size = np.dtype(_VT_NP[et]).itemsize
                arr = np.frombuffer(self._take(n * size), dtype=_VT_NP[et]).copy()
                return arr.astype(bool) if et == 7 else arr
            return [self._value(et) for _ in range(n)]
        fmt = _VT_FMT.get(vt)
        if fmt is None:
            raise GGUFError("unknown metadata value type %d" % vt)
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    # --- tensors ---
    def raw(self, name):
        """The tensor's bytes (a uint8 view of the mapping)."""
        ti = self.tensors[name]
        return self.mm[ti.offset:ti.offset + ti.nbytes]

    def tensor(self, name, rows=None):
        """float32 array of the tensor in numpy shape (ne reversed). With
        rows (an index array), only those rows of a 2-D tensor."""
        ti = self.tensors[name]
        raw = self.raw(name)
        if rows is not None:
            n_in = ti.ne[0]
            rb = ti.nbytes // (ti.n_elems // n_in)
            raw2 = raw.reshape(-1, rb)[np.asarray(rows)]
            return dequantize(ti.type_id, raw2.reshape(-1), raw2.shape[0] * n_in).reshape(-1, n_in)
        return dequantize(ti.type_id, raw, ti.n_elems).reshape(ti.shape)


# --- dequantization: every function maps raw bytes (uint8, whole blocks) to
# float32 values, vectorised over blocks ---

def _f16(b):
    """(nb, 2) uint8 -> (nb, 1) float32 of the little-endian halves."""
    return np.ascontiguousarray(b).view("<f2").astype(np.float32)


def _deq_q8_0(b):
    d = _f16(b[:, 0:2])
    q = np.ascontiguousarray(b[:, 2:34]).view(np.int8).astype(np.float32)
    return d * q


def _deq_q4_0(b):
    d = _f16(b[:, 0:2])
    qs = b[:, 2:18]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return d * q


def _deq_q5_0(b):
    d = _f16(b[:, 0:2])
    qh = np.ascontiguousarray(b[:, 2:6]).view("<u4")            # (nb, 1)
    hi = ((qh >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)  # (nb, 32)
    qs = b[:, 6:22]
    lo = np.concatenate([qs & 0x0F, qs >> 4], axis=1)
    q = (lo | (hi << 4)).astype(np.float32) - 16.0
    return d * q


def _k_scales(s):
    """(nb, 12) packed 6-bit scales/mins of Q4_K/Q5_K -> two (nb, 8) arrays.
    Sub-blocks 0..3: low 6 bits of bytes 0..3 (scales) and 4..7 (mins).
    Sub-blocks 4..7: low/high nibble of bytes 8..11, plus the top 2 bits of
    bytes 0..3 (scales) and 4..7 (mins) as bits 4..5."""
    s = s.astype(np.uint8)
    sc = np.empty((s.shape[0], 8), np.uint8)
    mn = np.empty((s.shape[0], 8), np.uint8)
    sc[:, 0:4] = s[:, 0:4] & 63
    mn[:, 0:4] = s[:, 4:8] & 63
    sc[:, 4:8] = (s[:, 8:12] & 0x0F) | ((s[:, 0:4] >> 6) << 4)
    mn[:, 4:8] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc.astype(np.float32), mn.astype(np.float32)


def _nibbles_k(qs):
    """(nb, 128) Q4_K/Q5_K qs -> (nb, 8, 32) 4-bit values per sub-block."""
    q = qs.reshape(-1, 4, 1, 32)
    return np.concatenate([q & 0x0F, q >> 4], axis=2).reshape(-1, 8, 32)


def _deq_q4_k(b):
    d = _f16(b[:, 0:2])
    dmin = _f16(b[:, 2:4])
    sc, mn = _k_scales(b[:, 4:16])
    q = _nibbles_k(b[:, 16:144]).astype(np.float32)
    y = (d * sc)[:, :, None] * q - (dmin * mn)[:, :, None]
    return y.reshape(-1, 256)


def _deq_q5_k(b):
    d = _f16(b[:, 0:2])
    dmin = _f16(b[:, 2:4])
    sc, mn = _k_scales(b[:, 4:16])
    qh = b[:, 16:48]                                            # (nb, 32)
    hi = (qh[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1
    q = (_nibbles_k(b[:, 48:176]) | (hi << 4)).astype(np.float32)
    y = (d * sc)[:, :, None] * q - (dmin * mn)[:, :, None]
    return y.reshape(-1, 256)


def _deq_q6_k(b):
    # Each half of 128 elements uses ql[64h..64h+64) and qh[32h..32h+32).
    # Element 32g + l of a half (g = 0..3, l = 0..31) takes the low nibble of
    # ql[l] (g=0), ql[32+l] (g=1), the high nibble of ql[l] (g=2),
    # ql[32+l] (g=3), and bits 2g..2g+1 of qh[l] as bits 4..5.
    d = _f16(b[:, 208:210])
    ql = b[:, 0:128].reshape(-1, 2, 2, 32)
    nib = np.concatenate([ql & 0x0F, ql >> 4], axis=2)          # (nb, 2, 4, 32)
    qh = b[:, 128:192].reshape(-1, 2, 1, 32)
    hi = (qh >> (2 * np.arange(4, dtype=np.uint8))[None, None, :, None]) & 3
    q = (nib | (hi << 4)).astype(np.float32).reshape(-1, 16, 16) - 32.0
    sc = np.ascontiguousarray(b[:, 192:208]).view(np.int8).astype(np.float32)
    y = (d * sc)[:, :, None] * q
    return y.reshape(-1, 256)


_BLOCK_DEQ = {2: _deq_q4_0, 6: _deq_q5_0, 8: _deq_q8_0,
              12: _deq_q4_k, 13: _deq_q5_k, 14: _deq_q6_k}

# Test hook: when set, dequantize() swaps the two halves of every group of 32
# quantized values (what reading Q4_0's low and high nibbles the wrong way
# round does), so the test can show its tolerances catch a layout bug.
MUTATE_LAYOUT = False


def dequantize(type_id, raw, n):
    """n float32 values from raw bytes of ggml type type_id."""
    raw = np.asarray(raw, dtype=np.uint8)
    if type_id == 0:
        return np.ascontiguousarray(raw).view("<f4").astype(np.float32)
    if type_id == 1:
        return np.ascontiguousarray(raw).view("<f2").astype(np.float32)
    if type_id == 30:
        u = np.ascontiguousarray(raw).view("<u2").astype(np.uint32) << 16
        return u.view(np.float32)
    if type_id == 28:
        return np.ascontiguousarray(raw).view("<f8").astype(np.float32)
    fn = _BLOCK_DEQ.get(type_id)
    if fn is None:
        raise GGUFError("no dequantizer for %s" % TYPES.get(type_id, (type_id,))[0])
    _, be, bb = TYPES[type_id]
    blocks = raw.reshape(n // be, bb)
    y = fn(blocks).reshape(-1).astype(np.float32)
    if MUTATE_LAYOUT:
        y = y.reshape(-1, 2, 16)[:, ::-1].reshape(-1)
    return y


# --- self-test: scalar (loop) dequantizers written straight from the layout
# text above, against the vectorised ones, on random bytes ---

def _h(b, i):
    return float(np.frombuffer(bytes(b[i:i + 2]), "<f2")[0])


def _scalar_block(tid, b):
    b = [int(x) for x in b]
    y = []
    if tid == 8:
        d = _h(bytes(b), 0)
        return [d * (v - 256 if v > 127 else v) for v in b[2:34]]
    if tid in (2, 6):
        d = _h(bytes(b), 0)
        if tid == 2:
            qs = b[2:18]
            return [d * ((qs[j] & 15) - 8) for j in range(16)] + \
                   [d * ((qs[j] >> 4) - 8) for j in range(16)]
        qh = b[2] | b[3] << 8 | b[4] << 16 | b[5] << 24
        qs = b[6:22]
        for j in range(32):
            nib = (qs[j] & 15) if j < 16 else (qs[j - 16] >> 4)
            y.append(d * ((nib | ((qh >> j) & 1) << 4) - 16))
        return y
    if tid in (12, 13):
        d, dmin = _h(bytes(b), 0), _h(bytes(b), 2)
        s = b[4:16]

        def scm(j):
            if j < 4:
                return s[j] & 63, s[j + 4] & 63
            return (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)
        qh = b[16:48]
        qs = b[16:144] if tid == 12 else b[48:176]
        for sub in range(8):
            sc, m = scm(sub)
            for l in range(32):
                byte = qs[32 * (sub // 2) + l]
                q = (byte & 15) if sub % 2 == 0 else (byte >> 4)
                if tid == 13:
                    q += 16 if qh[l] & (1 << sub) else 0
                y.append(d * sc * q - dmin * m)
        return y
    if tid == 14:
        ql, qh, scr = b[0:128], b[128:192], b[192:208]
        d = _h(bytes(b), 208)
        sc = [v - 256 if v > 127 else v for v in scr]
        y = [0.0] * 256
        for h in range(2):
            for l in range(32):
                for g in range(4):
                    lb = ql[64 * h + l + (32 if g % 2 else 0)]
                    nib = (lb & 15) if g < 2 else (lb >> 4)
                    q = nib | (((qh[32 * h + l] >> (2 * g)) & 3) << 4)
                    e = 128 * h + 32 * g + l
                    y[e] = d * sc[e // 16] * (q - 32)
        return y
    raise ValueError(tid)


def selftest():
    rng = np.random.default_rng(1)
    bad = 0
    for name in ("Q8_0", "Q4_0", "Q5_0", "Q4_K", "Q5_K", "Q6_K"):
        tid = TYPE_IDS[name]
        _, be, bb = TYPES[tid]
        nblk = 3
        raw = rng.integers(0, 256, size=nblk * bb, dtype=np.uint8)
        # keep the f16 scales finite and modest: exponent bits cleared a bit
        for i in range(nblk):
            blk = raw[i * bb:(i + 1) * bb]
            for off in ((0, 2) if tid in (12, 13) else (208,) if tid == 14 else (0,)):
                blk[off + 1] &= 0x3B
        vec = dequantize(tid, raw, nblk * be)
        ref = np.concatenate([np.array(_scalar_block(tid, raw[i * bb:(i + 1) * bb]), np.float64)
                              for i in range(nblk)])
        err = np.max(np.abs(vec - ref) / (np.abs(ref) + 1e-30 + np.max(np.abs(ref)) * 1e-6))
        ok = err < 1e-5
        bad += not ok
        print("%-5s vectorised vs scalar: max rel err %.2e %s" % (name, err, "ok" if ok else "FAIL"))
    x = np.array([1.0, -2.5, 3.140625], np.float32)
    bf = (x.view(np.uint32) >> 16).astype("<u2")
    okb = np.array_equal(dequantize(30, bf.view(np.uint8), 3), x)
    print("BF16  round trip %s" % ("ok" if okb else "FAIL"))
    return 0 if bad == 0 and okb else 1


def _info(path):
    g = GGUF(path)
    print("GGUF v%d, %d kv, %d tensors, alignment %d" % (g.version, len(g.kv), len(g.tensors), g.alignment))
    for k, v in g.kv.items():
        if isinstance(v, (list, np.ndarray)) and len(v) > 8:
            v = "[%d items] %s ..." % (len(v), list(v[:4]))
        print("  %s = %s" % (k, v))
    for ti in g.tensors.values():
        print("  %-32s %-5s ne=%s" % (ti.name, ti.type_name, ti.ne))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "selftest":
        sys.exit(selftest())
    if len(sys.argv) == 3 and sys.argv[1] == "info":
        _info(sys.argv[2])
        sys.exit(0)
    print("usage: ggufnp.py info FILE | selftest", file=sys.stderr)
    sys.exit(2)
