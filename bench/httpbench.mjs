#!/usr/bin/env node
// httpbench.mjs — polluxd under concurrent streaming load over HTTP (no
// dependencies; Node >= 18). For each concurrency level it sends that many
// /v1/completions requests at once (token-id prompts of --prompt tokens, so
// the prompt length is exact; ignore_eos, greedy) and reports aggregate
// output tok/s, TTFT and inter-token latency percentiles, measured from SSE
// arrival times on the client. Bounded: every request has a timeout and the
// run stops by itself.
//
//   node bench/httpbench.mjs --url http://127.0.0.1:8080 [--conc 1,4,16,64]
//        [--prompt 128] [--gen 128] [--vocab 262144] [--timeout 600] [--api-key K]
//        [--logprobs 1]
const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, arr) => {
  if (v.startsWith('--')) a.push([v.slice(2), arr[i + 1]]);
  return a;
}, []));
const url = args.url ?? 'http://127.0.0.1:8080';
const levels = (args.conc ?? '1,4,16,64').split(',').map(Number);
const promptLen = Number(args.prompt ?? 128), gen = Number(args.gen ?? 128);
const vocab = Number(args.vocab ?? 262144), timeoutS = Number(args.timeout ?? 600);
const withLogprobs = 'logprobs' in args;
const headers = { 'Content-Type': 'application/json' };
if (args['api-key']) headers.Authorization = `Bearer ${args['api-key']}`;

let seed = 12345;
const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0);

async function one(prompt) {
  const t0 = performance.now();
  const res = await fetch(url + '/v1/completions', {
    method: 'POST', headers, signal: AbortSignal.timeout(timeoutS * 1000),
    // usage gives the exact token count; --logprobs makes every token a chunk
    // even when its text is empty (random test models produce many such
    // tokens), at the cost of a log-softmax per token.
    body: JSON.stringify({ model: 'bench', prompt, max_tokens: gen, temperature: 0, ignore_eos: true, stream: true,
      ...(withLogprobs ? { logprobs: 0 } : {}), stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const dec = new TextDecoder();
  let buf = '', first = 0, last = 0, tokens = 0, usage = -1;
  const gaps = [];
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith('data: {')) continue;
      const j = JSON.parse(ev.slice(6));
      if (j.error) throw new Error(j.error.message);
      if (j.usage && !j.choices.length) { usage = j.usage.completion_tokens; continue; }
      if (withLogprobs ? !j.choices?.[0]?.logprobs : !j.choices?.[0]?.text) continue;
      const now = performance.now();
      if (!first) first = now; else gaps.push(now - last);
      last = now;
      tokens++;
    }
  }
  return { ttft: first - t0, gaps, tokens: usage >= 0 ? usage : tokens };
}

const pct = (v, q) => {
  if (!v.length) return 0;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))];
};

console.log(`url ${url}, prompts ${promptLen} tokens, ${gen} output tokens`);
console.log('conc      tok/s   TTFT p50   TTFT p99    ITL p50    ITL p99');
for (const c of levels) {
  const prompts = Array.from({ length: c }, () => Array.from({ length: promptLen }, () => 300 + (rnd() % (vocab - 300))));
  const t0 = performance.now();
  const rs = await Promise.all(prompts.map(one));
  const wall = (performance.now() - t0) / 1000;
  const tokens = rs.reduce((a, r) => a + r.tokens, 0);
  const ttft = rs.map((r) => r.ttft / 1000), itl = rs.flatMap((r) => r.gaps);
  console.log(`${String(c).padStart(4)} ${(tokens / wall).toFixed(1).padStart(10)} ${pct(ttft, 0.5).toFixed(2).padStart(9)}s ${pct(ttft, 0.99).toFixed(2).padStart(9)}s ${pct(itl, 0.5).toFixed(1).padStart(8)}ms ${pct(itl, 0.99).toFixed(1).padStart(8)}ms`);
}
