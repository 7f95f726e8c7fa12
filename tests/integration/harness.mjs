// harness.mjs — starts a polluxd for a test file: a tiny generated model, a
// free 127.0.0.1 port, and teardown that stops the daemon by its PID.
// PX_TEST_DAEMON=host:port uses a daemon started by hand instead.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const builddir = process.env.PX_BUILDDIR ?? process.cwd();

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

// waitReady false: return as soon as it answers HTTP at all (e.g. 503
// "loading"); env: extra environment variables.
export async function startDaemon(extraArgs = [], { modelArgs = ['--arch', 'gemma3', '--tiny', '--type', 'Q8_0'], env = {}, waitReady = true } = {}) {
  if (process.env.PX_TEST_DAEMON) {
    return { base: 'http://' + process.env.PX_TEST_DAEMON, stop: async () => {}, log: () => '' };
  }
  const tmp = mkdtempSync(join(tmpdir(), 'pxd-'));
  const model = join(tmp, 'model.gguf');
  execFileSync(join(builddir, 'tools/pollux-mkmodel'), [...modelArgs, '-o', model]);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let log = '';
  const proc = spawn(join(builddir, 'polluxd'),
    ['--model', model, '--host', '127.0.0.1', '--port', String(port), '--threads', '2', ...extraArgs],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  proc.stderr.on('data', (d) => { log += d.toString(); });
  const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  const end = Date.now() + 20000;
  for (;;) {
    try {
      const st = (await fetch(base + '/ready')).status;
      if (st === 200 || !waitReady) break;
    } catch { /* not listening yet */ }
    if (Date.now() > end || proc.exitCode !== null) {
      proc.kill('SIGKILL');
      rmSync(tmp, { recursive: true, force: true });
      throw new Error('polluxd did not become ready:\n' + log);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    base, proc, exited,
    log: () => log,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const res = await exited;
      rmSync(tmp, { recursive: true, force: true });
      return res;
    },
  };
}
