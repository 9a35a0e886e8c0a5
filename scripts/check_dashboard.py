"""Open the published asv dashboard in headless Chromium, offline, and check that it works.

    python scripts/check_dashboard.py benchmarks/.asv/html     # CI, after publish_dashboard.py

The folder is served on 127.0.0.1 (asv's pages load their JSON with XMLHttpRequest, which browsers
refuse for file:// pages; ``asv preview`` serves it the same way). Checked:

- the page did not fall back to asv's "external (JavaScript) dependencies failed to load" page, and
  every script and stylesheet it loads comes from the served folder;
- the benchmark grid lists the benchmarks of the results (one entry per benchmark);
- the first benchmark's page draws its graph (a flot canvas) with at least one data point.

Exit status 0 when all pass, 1 otherwise.
"""

import argparse
import functools
import http.server
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from headless import Browser  # noqa: E402

WAIT = """new Promise(resolve => {
  const start = Date.now();
  (function poll() {
    const done = %s;
    if (done || Date.now() - start > 20000) resolve(Boolean(done)); else setTimeout(poll, 100);
  })();
})"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(folder):
    handler = functools.partial(_QuietHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def check(folder):
    """``(problems, number of benchmarks shown)``."""
    with open(os.path.join(folder, "index.json"), encoding="utf-8") as file:
        expected = len(json.load(file)["benchmarks"])
    problems = []
    server = _serve(folder)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with Browser() as browser:
            browser.open(base + "index.html")
            shown = 0
            if not browser.evaluate(WAIT % "document.querySelectorAll('.benchmark-container').length > 0"):
                problems.append(f"the benchmark grid stayed empty (page: {browser.evaluate('location.href')})")
            else:
                shown = browser.evaluate("document.querySelectorAll('.benchmark-container').length")
                if shown != expected:
                    problems.append(f"the grid shows {shown} benchmarks, the results have {expected}")
            if "error.html" in browser.evaluate("location.href"):
                problems.append("asv's page fell back to error.html: a script failed to load")
            outside = browser.evaluate(
                "Array.from(document.querySelectorAll('script[src], link[rel=stylesheet]'))"
                f".map(e => e.src || e.href).filter(u => !u.startsWith({json.dumps(base)}))"
            )
            problems += [f"loaded from outside the dashboard: {url}" for url in outside]
            first = browser.evaluate("document.querySelector('.benchmark-container').getAttribute('href')") if shown else None
            if first:
                browser.evaluate(f"location.hash = {json.dumps(first)}")
                drawn = WAIT % "document.querySelector('#main-graph canvas.flot-base') !== null && $('#main-graph').data('plot') && $('#main-graph').data('plot').getData().some(s => s.data.length > 0)"
                if not browser.evaluate(drawn):
                    problems.append(f"the graph of {first} was not drawn")
    finally:
        server.shutdown()
    return problems, shown


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the published dashboard (benchmarks/.asv/html)")
    args = parser.parse_args(argv)
    problems, shown = check(args.folder)
    for problem in problems:
        print(problem)
    print(f"asv dashboard in headless Chromium: {shown} benchmarks shown, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
