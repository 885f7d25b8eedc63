#!/usr/bin/env python3
"""The dashboard in a real browser: headless Chromium driven over the Chrome
DevTools Protocol against a running native server with an admin key.

Usage: dashboard.py EDGEQ_BINARY SCREENSHOT_PATH

Creates a queue, sends a message whose body is a <script> (and checks it is
shown as text, never run or parsed as markup), sees the count change, peeks,
pops, purges, sees a queue's dead letters, and loads /docs. Saves a screenshot of the dashboard. Every wait
polls the page with a generous limit; nothing asserts on timing.

Needs `chromium` (Debian package) and `websocket-client` (PyPI); scripts/test.sh
installs both when missing.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

ADMIN_KEY = "browser-test-admin-key-0123456789"
EVIL = "<script>window.__pwned = 1</script><b>bold?</b>"
QUEUE = "browser-q"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, probe, limit=30.0):
    start = time.monotonic()
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() - start > limit:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.1)


class Page:
    """One page target over CDP: commands by id, events ignored."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def send(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def goto(self, url):
        self.send("Page.navigate", url=url)
        wait_for(f"{url} loads", lambda: self.eval("document.readyState") == "complete")

    def count(self):
        """The messages cell of the queue's row, or None while it is not listed."""
        return self.eval(
            f"(() => {{ const r = document.querySelector('tr[data-queue=\"{QUEUE}\"]');"
            " return r ? r.cells[1].textContent : null; })()"
        )


def main():
    binary, screenshot = sys.argv[1], sys.argv[2]
    port = free_port()
    env = dict(os.environ, EDGEQ_ADMIN_KEY=ADMIN_KEY, RUST_LOG="warn")
    server = subprocess.Popen(
        [binary, "serve", "--store", "memory", "--listen", f"127.0.0.1:{port}"], env=env
    )
    base = f"http://127.0.0.1:{port}"
    profile = tempfile.mkdtemp(prefix="edgeq-chromium-")
    browser = None
    try:
        wait_for("the server answers", lambda: _healthy(base))
        browser = subprocess.Popen(
            [
                shutil.which("chromium") or "chromium",
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--remote-debugging-port=0",
                f"--user-data-dir={profile}", "about:blank",
            ],
            stderr=subprocess.PIPE, text=True,
        )
        devtools = None
        for line in browser.stderr:
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                devtools = m.group(1)
                break
        assert devtools, "chromium did not start its DevTools endpoint"
        http_base = "http://" + devtools.split("/")[2]
        pages = json.load(urllib.request.urlopen(http_base + "/json/list"))
        page = Page(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"])
        page.send("Emulation.setDeviceMetricsOverride", width=1100, height=760, deviceScaleFactor=1, mobile=False)

        page.goto(base + "/")
        # No key yet: the page says why it shows nothing.
        wait_for("the refusal is shown", lambda: "unauthorized" in page.eval("document.getElementById('status').textContent"))
        page.eval(
            f"(() => {{ const k = document.getElementById('key'); k.value = '{ADMIN_KEY}';"
            " k.dispatchEvent(new Event('change')); })()"
        )
        print("browser: key entered")

        page.eval(
            f"(() => {{ document.getElementById('new-name').value = '{QUEUE}';"
            " document.getElementById('create').requestSubmit(); })()"
        )
        wait_for("the new queue is listed", lambda: page.count() == "0")
        page.eval(f"document.querySelector('tr[data-queue=\"{QUEUE}\"]').click()")
        for body in [EVIL, "second message"]:
            page.eval(
                f"(() => {{ document.getElementById('send-body').value = {json.dumps(body)};"
                " document.getElementById('send').requestSubmit(); })()"
            )
            wait_for("the send is answered", lambda: "Sent" in page.eval("document.getElementById('status').textContent"))
            page.eval("document.getElementById('status').textContent = ''")
        wait_for("the count shows 2", lambda: page.count() == "2")
        print("browser: queue created, 2 messages sent, count 2")

        page.eval("document.getElementById('peek').click()")
        bodies = wait_for(
            "peeked messages are shown",
            lambda: page.eval("[...document.querySelectorAll('#messages pre.body')].map(p => p.textContent)") or None,
        )
        assert bodies[0] == EVIL, f"the body is not shown as sent: {bodies}"
        assert page.eval("document.querySelectorAll('#messages b, #messages script').length") == 0, "a body became markup"
        assert page.eval("window.__pwned === undefined"), "a message body ran as a script"
        assert page.count() == "2", "peek consumed messages"
        print("browser: peek shows the <script> body as text")

        shot = page.send("Page.captureScreenshot", format="png")
        os.makedirs(os.path.dirname(screenshot) or ".", exist_ok=True)
        with open(screenshot, "wb") as f:
            import base64
            f.write(base64.b64decode(shot["data"]))
        print(f"browser: screenshot {screenshot}")

        page.eval("document.getElementById('pop').click()")
        wait_for("the pop is shown", lambda: page.eval("document.getElementById('list-title').textContent").startswith("Popped"))
        popped = page.eval("document.querySelector('#messages pre.body').textContent")
        assert popped == EVIL, f"pop returned {popped!r}"
        wait_for("the count shows 1", lambda: page.count() == "1")
        print("browser: pop took the first message, count 1")

        page.eval("window.confirm = () => true; document.getElementById('purge').click()")
        wait_for("the count shows 0", lambda: page.count() == "0")
        print("browser: purge emptied the queue")

        dead_letter(base)
        wait_for("poisoned is listed", lambda: page.eval("!!document.querySelector('tr[data-queue=\"poisoned\"]')"))
        page.eval("document.querySelector('tr[data-queue=\"poisoned\"]').click()")
        page.eval("document.getElementById('dead').click()")
        wait_for(
            "the dead letters are shown",
            lambda: page.eval("document.getElementById('list-title').textContent").startswith("Dead letters"),
        )
        dead = page.eval("[...document.querySelectorAll('#messages pre.body')].map(p => p.textContent)")
        assert dead == ['"poison"'], dead
        print("browser: dead letters show the DLQ's message")

        page.goto(base + "/docs")
        wait_for(
            "/docs lists the operations",
            lambda: page.eval("document.querySelectorAll('details.op').length") >= 20,
        )
        paths = page.eval("[...document.querySelectorAll('details.op .path')].map(p => p.textContent)")
        assert "/v1/queues/{q}/messages" in paths, paths
        print(f"browser: /docs lists {len(paths)} operations")
        print("browser: ok")
    finally:
        if browser:
            browser.kill()
            browser.wait()
        server.terminate()
        server.wait()
        shutil.rmtree(profile, ignore_errors=True)


def call(base, method, path, body=None):
    """One v1 call as the admin; the parsed JSON answer (None when empty)."""
    req = urllib.request.Request(base + path, method=method, data=body.encode() if body is not None else None)
    req.add_header("authorization", "Bearer " + ADMIN_KEY)
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as res:
        text = res.read()
        return json.loads(text) if text and res.headers.get("content-type", "").startswith("application/json") else None


def dead_letter(base):
    """A queue `poisoned` whose one message went to its dead-letter queue `dlq`."""
    call(base, "PUT", "/v1/queues/dlq")
    call(base, "PUT", "/v1/queues/poisoned", '{"max_receives": 1, "dead_letter_queue": "dlq"}')
    call(base, "POST", "/v1/queues/poisoned/messages", '"poison"')

    def moved():
        got = call(base, "POST", "/v1/queues/poisoned/receive?count=1")
        for m in (got or {}).get("messages", []):
            call(base, "POST", "/v1/queues/poisoned/nack", json.dumps({"receipts": [m["receipt"]]}))
        return call(base, "GET", "/v1/queues/dlq")["stats"]["messages"] == 1

    wait_for("the message is dead-lettered", moved)


def _healthy(base):
    try:
        return urllib.request.urlopen(base + "/healthz", timeout=2).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
