// lb.mjs — two polluxd replicas behind nginx (conf/nginx/polluxd.conf), or
// HAProxy (conf/haproxy/polluxd.cfg) with PX_LB=haproxy: steady streamed and
// unstreamed load, then (a) SIGKILL of one replica and (b) its restart
// followed by SIGTERM of the other. Counts requests sent/succeeded/failed
// per phase and exits non-zero if a request that the deployment promises to
// serve failed. Plain node, no packages; run by check-lb.sh (PX_LB_BIN=path
// to the nginx or haproxy binary). Bounded: it stops itself after
// LB_DEADLINE_S seconds (default 170) whatever happens.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, chmodSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const builddir = process.env.PX_BUILDDIR ?? process.cwd();
const srcdir = process.env.PX_SRCDIR ?? '.';
const LB = process.env.PX_LB ?? 'nginx';
const LB_BIN = process.env.PX_LB_BIN ?? LB;
// LB_UPSTREAM_KEEPALIVE=0 removes the upstream keep-alive directives from
// the shipped configuration (a new connection to a replica per request).
const UPSTREAM_KEEPALIVE = process.env.LB_UPSTREAM_KEEPALIVE !== '0';
// LB_DRAIN_FIRST=1 (nginx): before the SIGTERM, mark the replica "down" and
// reload nginx, the documented way to stop a replica behind nginx.
const DRAIN_FIRST = process.env.LB_DRAIN_FIRST === '1';
const DEADLINE_S = Number(process.env.LB_DEADLINE_S ?? 170);
const CONCURRENCY = Number(process.env.LB_CONCURRENCY ?? 6);
const STEADY_S = 8, AFTER_KILL_S = 10, AFTER_TERM_S = 8;

const t0 = Date.now();
const now = () => Date.now() - t0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (...a) => console.log(`[lb ${(now() / 1000).toFixed(1)}s]`, ...a);

const tmp = mkdtempSync(join(tmpdir(), 'px-lb-'));
chmodSync(tmp, 0o755); // nginx workers run as nobody when we are root
const procs = new Set(); // every child we started, killed by PID at exit
let keepTmp = false;

// The balancers run in their own process group (spawned detached) so that
// killing the group also ends their worker processes.
function cleanupSync() {
  for (const p of procs) {
    if (p.exitCode === null && p.signalCode === null) {
      try { process.kill(p.group ? -p.pid : p.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
  if (!keepTmp) rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(1));
const hardStop = setTimeout(() => {
  console.error(`lb: not finished after ${DEADLINE_S} s, giving up`);
  keepTmp = true;
  console.error(`lb: logs kept in ${tmp}`);
  process.exit(1);
}, DEADLINE_S * 1000);
hardStop.unref();

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function track(proc, group = false) {
  proc.group = group;
  procs.add(proc);
  proc.exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  return proc;
}

// --- replicas ---------------------------------------------------------
const model = join(tmp, 'm.gguf');
execFileSync(join(builddir, 'tools/pollux-mkmodel'), ['--arch', 'gemma3', '--tiny', '--type', 'Q8_0', '-o', model]);

async function waitReady(base, proc, ms) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if ((await fetch(base + '/ready')).status === 200) return;
    } catch { /* not listening yet */ }
    if (Date.now() > end || proc.exitCode !== null) throw new Error(`${base} did not become ready`);
    await sleep(50);
  }
}

let generation = 0;
async function startReplica(name, port) {
  const logPath = join(tmp, `${name}.${++generation}.log`);
  const fd = openSync(logPath, 'a');
  const proc = track(spawn(join(builddir, 'polluxd'),
    ['--model', model, '--model-id', 'tiny', '--host', '127.0.0.1', '--port', String(port),
      '--threads', '1', '--drain-timeout-s', '30'],
    { stdio: ['ignore', 'ignore', fd] }));
  closeSync(fd);
  const r = { name, port, addr: `127.0.0.1:${port}`, base: `http://127.0.0.1:${port}`, proc, logPath };
  await waitReady(r.base, proc, 20000);
  return r;
}

// --- nginx, from the shipped configuration with the test's ports -------
const nginxConf = (upstreams, listenPort) => {
  let site = readFileSync(join(srcdir, 'conf/nginx/polluxd.conf'), 'utf8');
  // Replace the upstream's example "server ADDR:PORT params;" lines by ours,
  // keeping their parameters (max_fails, fail_timeout).
  const serverLine = /^([ \t]*)server[ \t]+\S+:\d+([ \t][^;\n]*)?;[ \t]*$/m;
  const m = site.match(serverLine);
  if (!m) throw new Error('conf/nginx/polluxd.conf: no upstream server line');
  const ours = upstreams.map((u) => `${m[1]}server ${u}${m[2] ?? ''};`).join('\n');
  site = site.replace(new RegExp(serverLine.source, 'gm'), '\0');
  site = site.replace('\0', ours).replace(/\0\n?/g, '');
  let listened = false;
  site = site.replace(/^([ \t]*)listen[ \t][^;\n]*;[ \t]*$/gm, (_, ind) => {
    if (listened) return '';
    listened = true;
    return `${ind}listen 127.0.0.1:${listenPort};`;
  });
  if (!listened) throw new Error('conf/nginx/polluxd.conf: no listen line');
  if (!UPSTREAM_KEEPALIVE) site = site.replace(/^[ \t]*(keepalive(_timeout|_requests)?[ \t]|proxy_set_header[ \t]+Connection[ \t])[^;\n]*;[ \t]*$/gm, '');
  writeFileSync(join(tmp, 'polluxd-site.conf'), site);
  // The wrapper gives nginx its own files under tmp; the X-Upstream header
  // (inherited by the location, which sets none) tells the test which
  // replica served a request.
  return `worker_processes 1;
pid ${tmp}/nginx.pid;
error_log ${tmp}/nginx-error.log warn;
events { worker_connections 512; }
http {
    log_format lb '$msec $status $request_method $request_uri up=$upstream_addr st=$upstream_status t=$request_time';
    access_log ${tmp}/nginx-access.log lb;
    client_body_temp_path ${tmp}/body;
    proxy_temp_path ${tmp}/proxy;
    fastcgi_temp_path ${tmp}/fastcgi;
    uwsgi_temp_path ${tmp}/uwsgi;
    scgi_temp_path ${tmp}/scgi;
    add_header X-Upstream $upstream_addr always;
    include ${tmp}/polluxd-site.conf;
}
`;
};

// nginx reads inherited listening sockets from $NGINX: keep it out.
function envNoNginx() {
  const env = { ...process.env };
  delete env.NGINX;
  return env;
}

async function waitLb(proc, port) {
  const base = `http://127.0.0.1:${port}`;
  const end = Date.now() + 10000;
  for (;;) {
    try {
      if ((await fetch(base + '/health')).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > end || proc.exitCode !== null) throw new Error(`${LB} did not start: see ${tmp}`);
    await sleep(50);
  }
  return base;
}

async function startNginx(upstreams, port) {
  const conf = join(tmp, 'nginx.conf');
  writeFileSync(conf, nginxConf(upstreams, port));
  const args = ['-p', tmp + '/', '-c', conf, '-e', join(tmp, 'nginx-error.log')];
  execFileSync(LB_BIN, [...args, '-t', '-q'], { stdio: ['ignore', 'inherit', 'inherit'], env: envNoNginx() });
  const proc = track(spawn(LB_BIN, [...args, '-g', 'daemon off;'], { stdio: ['ignore', 'inherit', 'inherit'], env: envNoNginx(), detached: true }), true);
  const base = await waitLb(proc, port);
  const stats = () => {
    const access = readFileSync(join(tmp, 'nginx-access.log'), 'utf8').split('\n').filter((l) => / POST /.test(l));
    const retried = access.filter((l) => /up=\S+, /.test(l)).length;
    const errs = readFileSync(join(tmp, 'nginx-error.log'), 'utf8').split('\n').filter(Boolean);
    return `nginx: ${access.length} POSTs logged, ${retried} passed to a second replica (up=a, b); ` +
      `error log: ${errs.length} lines` + (errs.length ? `, last: ${errs.at(-1).slice(0, 160)}` : '');
  };
  return { proc, base, stats, stopSignal: 'SIGQUIT' };
}

// HAProxy, from the shipped configuration with the test's ports. Logging
// goes nowhere (no syslog here); the X-Upstream header names the replica.
async function startHaproxy(upstreams, port) {
  let cfg = readFileSync(join(srcdir, 'conf/haproxy/polluxd.cfg'), 'utf8');
  const serverLine = /^([ \t]*)server[ \t]+\S+[ \t]+\S+:\d+([^\n]*)$/m;
  const m = cfg.match(serverLine);
  if (!m) throw new Error('conf/haproxy/polluxd.cfg: no server line');
  cfg = cfg.replace(new RegExp(serverLine.source, 'gm'), '\0');
  cfg = cfg.replace('\0', upstreams.map((u, i) => `${m[1]}server r${i + 1} ${u}${m[2]}`).join('\n')).replace(/\0\n?/g, '');
  let bound = false;
  cfg = cfg.replace(/^([ \t]*)bind[ \t][^\n]*$/gm, (_, ind) => {
    if (bound) return '';
    bound = true;
    return `${ind}bind 127.0.0.1:${port}`;
  });
  cfg = cfg.replace(/^[ \t]*log[ \t]+\/dev\/log[^\n]*$/gm, '');
  cfg = cfg.replace(/^backend polluxd$/m, 'backend polluxd\n    http-response set-header X-Upstream "%si:%sp"');
  const conf = join(tmp, 'haproxy.cfg');
  writeFileSync(conf, cfg);
  execFileSync(LB_BIN, ['-c', '-q', '-f', conf], { stdio: ['ignore', 'inherit', 'inherit'] });
  const proc = track(spawn(LB_BIN, ['-db', '-f', conf], { stdio: ['ignore', 'inherit', 'inherit'], detached: true }), true);
  const base = await waitLb(proc, port);
  return { proc, base, stats: () => 'haproxy: no log', stopSignal: 'SIGUSR1' };
}

// --- load ---------------------------------------------------------------
const json = { 'Content-Type': 'application/json' };
const kinds = [
  { name: 'chat-stream', path: '/v1/chat/completions', stream: true,
    body: { model: 'tiny', messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 600, ignore_eos: true, stream: true },
    ok: (t) => /"finish_reason":"length"/.test(t) && /data: \[DONE\]\s*$/.test(t) && !/"error"/.test(t) },
  { name: 'completion', path: '/v1/completions', stream: false,
    body: { model: 'tiny', prompt: 'Once upon a time', max_tokens: 120, ignore_eos: true },
    ok: (t) => JSON.parse(t).choices?.[0]?.finish_reason === 'length' },
  { name: 'gemini-stream', path: '/v1beta/models/tiny:streamGenerateContent?alt=sse', stream: true,
    body: { contents: [{ role: 'user', parts: [{ text: 'Hello there' }] }], generationConfig: { maxOutputTokens: 300 } },
    ok: (t) => /"finishReason":"(MAX_TOKENS|STOP)"/.test(t) && !/"error"/.test(t) },
  { name: 'chat', path: '/v1/chat/completions', stream: false,
    body: { model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 80, ignore_eos: true },
    ok: (t) => JSON.parse(t).choices?.[0]?.finish_reason === 'length' },
];

const results = []; // { kind, start, end, ok, status, err, upstream }
const inflight = new Set();
let running = true;

async function one(lb, kind) {
  const r = { kind: kind.name, stream: kind.stream, start: now(), end: 0, ok: false, status: 0, err: '', upstream: '' };
  inflight.add(r);
  try {
    const res = await fetch(lb + kind.path, { method: 'POST', headers: json, body: JSON.stringify(kind.body), signal: AbortSignal.timeout(30000) });
    r.status = res.status;
    r.upstream = res.headers.get('x-upstream') ?? '';
    const text = await res.text();
    r.ok = res.status === 200 && kind.ok(text);
    if (!r.ok) r.err = `status ${res.status}: ${text.slice(-200).replace(/\s+/g, ' ')}`;
  } catch (e) {
    r.err = String(e.cause?.code ?? e.cause?.message ?? e.message ?? e);
  }
  r.end = now();
  inflight.delete(r);
  results.push(r);
}

async function worker(lb, i) {
  for (let n = 0; running; n++) await one(lb, kinds[(i + n) % kinds.length]);
}

// --- the run ---------------------------------------------------------------
const marks = {};
let failed = false;

function waitForLog(r, re, ms) {
  const end = Date.now() + ms;
  return (async () => {
    while (Date.now() < end) {
      if (re.test(readFileSync(r.logPath, 'utf8'))) return true;
      await sleep(100);
    }
    return false;
  })();
}

async function main() {
  const [pa, pb, pl] = [await freePort(), await freePort(), await freePort()];
  let A = await startReplica('A', pa);
  const B = await startReplica('B', pb);
  const lb = await (LB === 'haproxy' ? startHaproxy : startNginx)([A.addr, B.addr], pl);
  say(`load balancer: ${LB}`);
  if (LB === 'nginx') say(`upstream keep-alive ${UPSTREAM_KEEPALIVE ? 'on' : 'off'}${DRAIN_FIRST ? ', B marked down before its SIGTERM' : ''}`);
  say(`replicas A=${A.addr} (pid ${A.proc.pid}) B=${B.addr} (pid ${B.proc.pid}), ${LB} ${lb.base} (pid ${lb.proc.pid}), ${CONCURRENCY} clients`);

  const workers = Array.from({ length: CONCURRENCY }, (_, i) => worker(lb.base, i));
  await sleep(STEADY_S * 1000);

  // (a) SIGKILL replica A while requests are in flight.
  marks.kill = now();
  A.proc.kill('SIGKILL');
  await A.proc.exited;
  marks.killed = now(); // A is gone: every request sent from here must succeed
  say(`(a) SIGKILL A: exited after ${marks.killed - marks.kill} ms`);
  await sleep(AFTER_KILL_S * 1000);

  // (b) restart A on the same port, wait until it is ready and the balancer
  // sends it work again (nginx: after fail_timeout; HAProxy: after two good
  // checks), then SIGTERM B while streams run on it.
  marks.restart = now();
  A = await startReplica('A', pa);
  say(`(b) A restarted (pid ${A.proc.pid}), ready after ${now() - marks.restart} ms`);
  if (!(await waitForLog(A, /req=\d+ POST /, 20000))) throw new Error(`${LB} did not send work to the restarted replica within 20 s`);
  marks.back = now();
  say(`(b) ${LB} sends work to A again after ${marks.back - marks.restart} ms`);
  await sleep(2000);
  const streamEnd = Date.now() + 10000;
  while (![...inflight].some((r) => r.stream && r.upstream === B.addr) && Date.now() < streamEnd) await sleep(5);
  const atTerm = new Set([...inflight]);
  const streamsOnB = [...atTerm].filter((r) => r.stream && r.upstream === B.addr);
  if (DRAIN_FIRST && LB === 'nginx') {
    const site = join(tmp, 'polluxd-site.conf');
    writeFileSync(site, readFileSync(site, 'utf8').replace(`server ${B.addr}`, `server ${B.addr} down`));
    process.kill(lb.proc.pid, 'SIGHUP');
    say('(b) B marked down, nginx reloaded');
    await sleep(1000);
  }
  marks.term = now();
  B.proc.kill('SIGTERM');
  say(`(b) SIGTERM B with ${atTerm.size} requests in flight (${streamsOnB.length} streams on B)`);
  const bExit = await B.proc.exited;
  marks.termExited = now();
  say(`(b) B exited after ${marks.termExited - marks.term} ms: code ${bExit.code} signal ${bExit.sig}`);
  if (bExit.code !== 0) { console.error('FAIL: B did not exit 0 after draining'); failed = true; }
  if (streamsOnB.length === 0) { console.error('FAIL: no stream was in flight on B at SIGTERM'); failed = true; }
  await sleep(AFTER_TERM_S * 1000);

  running = false;
  await Promise.all(workers);
  marks.end = now();

  // --- counts ---
  const phases = [
    { name: 'steady (both up)', sel: (r) => r.end < marks.kill, mustPass: true },
    { name: 'in flight at SIGKILL', sel: (r) => r.start < marks.killed && r.end >= marks.kill, mustPass: false },
    { name: '(a) sent after SIGKILL', sel: (r) => r.start >= marks.killed && r.start < marks.restart && !atTerm.has(r), mustPass: true },
    { name: '(b) restart of A', sel: (r) => r.start >= marks.restart && r.start < marks.term && !atTerm.has(r), mustPass: true },
    { name: DRAIN_FIRST && LB === 'nginx' ? '(b) in flight at mark-down' : '(b) in flight at SIGTERM', sel: (r) => atTerm.has(r), mustPass: true },
    { name: '(b) sent after SIGTERM', sel: (r) => r.start >= marks.term, mustPass: true },
  ];
  console.log('\nphase                          sent  succeeded  failed  (streams on B at SIGTERM: ' +
    `${streamsOnB.length}, completed: ${streamsOnB.filter((r) => r.ok).length})`);
  for (const p of phases) {
    const rs = results.filter(p.sel);
    const bad = rs.filter((r) => !r.ok);
    console.log(`${p.name.padEnd(30)} ${String(rs.length).padStart(5)} ${String(rs.length - bad.length).padStart(10)} ${String(bad.length).padStart(7)}` +
      (p.mustPass ? '' : '  (may fail)'));
    for (const r of bad.slice(0, 5)) console.log(`    ${r.kind} t=${r.start}..${r.end} ms via ${r.upstream || '?'}: ${r.err}`);
    if (p.mustPass && bad.length) failed = true;
  }
  const byKind = {};
  for (const r of results) byKind[r.kind] = (byKind[r.kind] ?? 0) + 1;
  console.log(`total ${results.length} requests in ${((marks.end) / 1000).toFixed(1)} s:`, JSON.stringify(byKind));
  console.log(lb.stats());

  // --- stop everything by PID ---
  lb.proc.kill(lb.stopSignal);
  A.proc.kill('SIGTERM');
  const [ne, ae] = await Promise.race([Promise.all([lb.proc.exited, A.proc.exited]), sleep(35000).then(() => [null, null])]);
  if (!ne || !ae) { console.error(`FAIL: ${LB} or A did not stop`); failed = true; }
  else if (ae.code !== 0) { console.error(`FAIL: A exited with ${ae.code}/${ae.sig}`); failed = true; }
}

main().then(() => {
  if (failed) { keepTmp = true; console.error(`lb: FAIL (logs kept in ${tmp})`); process.exit(1); }
  console.log('lb: PASS');
  process.exit(0);
}, (e) => {
  keepTmp = true;
  console.error(`lb: ERROR ${e.stack ?? e} (logs kept in ${tmp})`);
  process.exit(1);
});
