#!/usr/bin/env python3
"""watchdog.py — polluxd's systemd watchdog feed and /health under a stalled
scheduler, with an injected stall (PX_TEST_FAULTS stall_step/stall_s).

The test owns the NOTIFY_SOCKET (a unix datagram socket, which node cannot
open) and checks: READY=1 and periodic WATCHDOG=1 while healthy, idle
included (stall_timeout_s 2 is longer than the idle scheduler's 1 s
check-in, so idle must never look stalled); during the stall WATCHDOG=1
stops and /health answers 503 "scheduler stalled" while /metrics still
answers (the HTTP thread is alive); after it, the request completes and the
pings and /health 200 come back; SIGTERM exits 0.
Run by check-daemon.sh with PX_BUILDDIR set. Bounded: about 15 s."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BUILDDIR = os.environ.get("PX_BUILDDIR", os.getcwd())
STALL_TIMEOUT = 2  # --stall-timeout-s
STALL_S = 6.0  # the injected stall: long enough to see the feed stop
DEADLINE = time.monotonic() + 50  # the whole test


def fail(msg, log=""):
    print("not ok - " + msg)
    if log:
        print("# polluxd log:\n" + "\n".join("# " + l for l in log.splitlines()[-40:]))
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(base, path, body=None, timeout=30):
    """(status, body text) of a GET, or a POST of the JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Notify:
    """Collects the datagrams polluxd sends to NOTIFY_SOCKET, timestamped."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.msgs = []  # (monotonic time, line)
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self.lock:
                for line in data.decode(errors="replace").split("\n"):
                    if line:
                        self.msgs.append((now, line))

    def times(self, line, since=0.0, until=float("inf")):
        with self.lock:
            return [t for t, l in self.msgs if l == line and since <= t <= until]

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def wait_for(what, cond, limit, log=lambda: ""):
    end = min(time.monotonic() + limit, DEADLINE)
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            fail("timed out waiting for " + what, log())
        time.sleep(0.05)


def main():
    polluxd = os.path.join(BUILDDIR, "polluxd")
    mkmodel = os.path.join(BUILDDIR, "tools", "pollux-mkmodel")
    tmp = tempfile.mkdtemp(prefix="pxwd-")
    notify = None
    proc = None
    logf = os.path.join(tmp, "polluxd.log")
    log = lambda: open(logf, errors="replace").read() if os.path.exists(logf) else ""
    try:
        model = os.path.join(tmp, "model.gguf")
        subprocess.run([mkmodel, "--arch", "gemma3", "--tiny", "--type", "Q8_0", "-o", model],
                       check=True, stdout=subprocess.DEVNULL)
        sock_path = os.path.join(tmp, "notify.sock")
        notify = Notify(sock_path)
        port = free_port()
        base = "http://127.0.0.1:%d" % port
        env = dict(os.environ, NOTIFY_SOCKET=sock_path,
                   PX_TEST_FAULTS="stall_step=3,stall_s=%g" % STALL_S)
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        with open(logf, "w") as lf:
            proc = subprocess.Popen(
                [polluxd, "--model", model, "--host", "127.0.0.1", "--port", str(port),
                 "--threads", "2", "--stall-timeout-s", str(STALL_TIMEOUT)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=lf, env=env)

        t_ready = wait_for("READY=1", lambda: notify.times("READY=1"), 20, log)[0]
        print("ok - READY=1")

        # Healthy and idle for longer than stall_timeout_s: pings every
        # 250 ms, never a gap near the timeout, /health 200 throughout.
        t0 = time.monotonic()
        while time.monotonic() < t0 + STALL_TIMEOUT + 1.0:
            st, body = http(base, "/health")
            if st != 200:
                fail("idle /health answered %d %s" % (st, body), log())
            time.sleep(0.2)
        pings = notify.times("WATCHDOG=1", since=t0)
        if len(pings) < 6:
            fail("only %d WATCHDOG=1 in %.1f s of idle" % (len(pings), time.monotonic() - t0),
                 log())
        gaps = [b - a for a, b in zip([t0] + pings, pings + [time.monotonic()])]
        if max(gaps) > STALL_TIMEOUT - 0.5:
            fail("idle: a %.2f s gap between watchdog pings" % max(gaps), log())
        print("ok - idle: %d watchdog pings, largest gap %.2f s, /health 200" %
              (len(pings), max(gaps)))

        # A request: pass 1 prefill, pass 2 decode, pass 3 stalls STALL_S.
        result = {}

        def run_request():
            result["r"] = http(base, "/v1/completions",
                               {"model": "tiny", "prompt": "Once upon a time", "max_tokens": 8,
                                "temperature": 0, "ignore_eos": True}, timeout=60)

        rt = threading.Thread(target=run_request)
        t_req = time.monotonic()
        rt.start()

        def stalled():
            st, body = http(base, "/health")
            return (st, body) if st != 200 else None

        st, body = wait_for("/health to report the stall", stalled, STALL_S)
        t_503 = time.monotonic()
        if st != 503 or json.loads(body).get("status") != "scheduler stalled":
            fail("/health during the stall: %d %s" % (st, body), log())
        if t_503 - t_req < STALL_TIMEOUT - 0.2:
            fail("/health said stalled %.2f s into the request, before stall_timeout_s" %
                 (t_503 - t_req), log())
        st, body = http(base, "/metrics")
        if st != 200 or "pollux:num_requests_running" not in body:
            fail("/metrics during the stall: %d" % st, log())
        print("ok - stall: /health 503 scheduler stalled after %.2f s, /metrics 200" %
              (t_503 - t_req))

        # No WATCHDOG=1 while stalled (a ping sent just before the 503 may
        # land a moment later: skip 0.3 s).
        time.sleep(1.5)
        if "r" in result:
            fail("the request finished during the stall: %r" % (result["r"],), log())
        late = notify.times("WATCHDOG=1", since=t_503 + 0.3, until=time.monotonic())
        if late:
            fail("%d WATCHDOG=1 during the stall" % len(late), log())
        st, _ = http(base, "/health")
        if st != 503:
            fail("/health back to %d while still stalled" % st, log())
        print("ok - no WATCHDOG=1 during the stall")

        # After the stall: the request completes, pings and /health 200 return.
        rt.join(timeout=max(1.0, DEADLINE - time.monotonic()))
        if rt.is_alive() or "r" not in result:
            fail("the stalled request never completed", log())
        st, body = result["r"]
        if st != 200 or json.loads(body)["usage"]["completion_tokens"] != 8:
            fail("the stalled request: %d %s" % (st, body), log())
        t_done = time.monotonic()
        if t_done - t_req < STALL_S:
            fail("the request took %.2f s, less than the stall" % (t_done - t_req), log())
        wait_for("WATCHDOG=1 after the stall",
                 lambda: len(notify.times("WATCHDOG=1", since=t_done)) >= 2, 5, log)
        st, _ = http(base, "/health")
        if st != 200:
            fail("/health after the stall: %d" % st, log())
        print("ok - after the stall: request 200 with 8 tokens, watchdog pings, /health 200")

        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=max(1.0, DEADLINE - time.monotonic()))
        except subprocess.TimeoutExpired:
            fail("polluxd did not exit on SIGTERM", log())
        proc = None
        if rc != 0:
            fail("polluxd exited %d (a sanitizer report makes it fail)" % rc, log())
        wait_for("STOPPING=1", lambda: notify.times("STOPPING=1"), 2, log)
        print("ok - SIGTERM: STOPPING=1, exit 0")
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        if notify is not None:
            notify.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
