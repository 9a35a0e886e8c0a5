"""Open local pages in headless Chromium and evaluate JavaScript in them (Chrome DevTools Protocol).

Used by ``check_docs.py`` and ``check_dashboard.py``, which CI runs on the built documentation and
the asv dashboard: what a reader sees is checked in a real browser, with no network. Needs the
``chromium`` system package (``apt-get install chromium``) and ``websocket-client``.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser():
    """Path of a Chromium-family browser, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium with one tab; ``open(url)`` then ``evaluate(expression)``.

    Use as a context manager; the browser process is ended on exit.
    """

    def __init__(self, width=1920, height=1080, executable=None):
        self.executable = executable or find_browser()
        if self.executable is None:
            raise RuntimeError(f"no headless browser found (tried {', '.join(BROWSERS)}); apt-get install chromium")
        self.width, self.height = width, height
        self._next_id = 0

    def __enter__(self):
        import websocket  # websocket-client

        self._profile = tempfile.TemporaryDirectory()
        self._process = subprocess.Popen(
            [self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions",
             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={self._profile.name}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        port = self._devtools_port()
        deadline = time.monotonic() + 30
        while True:
            tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            pages = [tab for tab in tabs if tab.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self._socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self._call("Page.enable")
        self._call("Runtime.enable")
        return self

    def _devtools_port(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self._process.stderr.readline()
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if match:
                return int(match.group(1))
            if not line and self._process.poll() is not None:
                break
        raise RuntimeError(f"{self.executable} did not start its DevTools endpoint")

    def __exit__(self, *exc):
        try:
            self._socket.close()
        finally:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process.stderr.close()
            self._profile.cleanup()

    def _call(self, method, **params):
        self._next_id += 1
        call_id = self._next_id
        self._socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def open(self, url, settle="true"):
        """Load ``url`` and wait until the page has loaded and the promise/expression ``settle`` resolved."""
        self._call("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while self.evaluate("document.readyState") != "complete" or self.evaluate("location.href") != url:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not finish loading in 60 s")
            time.sleep(0.05)
        self.evaluate(settle)

    def evaluate(self, expression):
        """The JSON value of a JavaScript expression (promises awaited)."""
        result = self._call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error in {expression[:80]!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def screenshot(self, path):
        import base64

        data = self._call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))


def file_url(path):
    return "file://" + os.path.abspath(path)
