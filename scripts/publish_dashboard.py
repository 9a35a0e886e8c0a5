"""``asv publish``, then make the dashboard work offline: its scripts and styles from the repository.

    cd benchmarks && asv run --python=same --set-commit-hash=$(git rev-parse HEAD)   # some results
    python scripts/publish_dashboard.py            # writes benchmarks/.asv/html
    (cd benchmarks && asv preview)                 # or any static file server on benchmarks/.asv/html

asv's page loads jQuery, flot, bootstrap and three small plugins from CDNs; without network it shows
only "One or more external (JavaScript) dependencies failed to load". This script replaces each of
those references with a copy from ``benchmarks/dashboard_vendor/`` (the same libraries at the same
versions, from the npm registry, with their licenses; ``stupid-table-plugin`` at 1.1.3, the only
version on npm, for asv's 1.0.1), and refuses to finish if the page still names a file on the
network, so that an asv upgrade that adds one is noticed. ``scripts/check_dashboard.py`` then opens
the result in headless Chromium (CI does both).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
VENDOR = os.path.join(BENCHMARKS, "dashboard_vendor")

#: The last part of each CDN address in asv's index.html -> the local copy (relative to vendor/).
LOCAL = {
    "jquery-3.3.1.min.js": "jquery.min.js",
    "jquery.flot.min.js": "jquery.flot.js",
    "jquery.flot.time.min.js": "jquery.flot.time.js",
    "jquery.flot.selection.min.js": "jquery.flot.selection.js",
    "jquery.flot.categories.min.js": "jquery.flot.categories.js",
    "jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupidtable.min.js",
    "md5.min.js": "md5.min.js",
    "bootstrap.min.js": "bootstrap.min.js",
    "bootstrap.min.css": "css/bootstrap.min.css",
}

_TAG = re.compile(r"<(script|link)\b[^>]*?(?:src|href)=\"(https?://[^\"]+)\"[^>]*>", re.IGNORECASE)


def localize(html):
    """``html`` with every CDN script and stylesheet replaced by its copy under ``vendor/``."""

    def replace(match):
        kind, url = match.group(1).lower(), match.group(2)
        if kind == "link" and "stylesheet" not in match.group(0):
            return match.group(0)  # an ordinary hyperlink
        name = url.rsplit("/", 1)[-1]
        if name not in LOCAL:
            raise SystemExit(f"publish_dashboard: asv's page loads {url}, which has no local copy in {VENDOR}")
        local = f"vendor/{LOCAL[name]}"
        if kind == "script":
            return f'<script src="{local}" onerror="js_load_failure()">'
        return f'<link rel="stylesheet" href="{local}">'

    return _TAG.sub(replace, html)


def publish(html_dir):
    subprocess.run([sys.executable, "-m", "asv", "publish"], cwd=BENCHMARKS, check=True)
    shutil.copytree(VENDOR, os.path.join(html_dir, "vendor"), dirs_exist_ok=True)
    for page in ("index.html", "error.html"):
        path = os.path.join(html_dir, page)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as file:
            html = localize(file.read())
        remaining = [url for _, url in _TAG.findall(html) if url.endswith((".js", ".css"))]
        if remaining:
            raise SystemExit(f"publish_dashboard: {page} still loads {remaining}")
        with open(path, "w", encoding="utf-8") as file:
            file.write(html)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html-dir", default=os.path.join(BENCHMARKS, ".asv", "html"))
    args = parser.parse_args(argv)
    publish(args.html_dir)
    print(f"dashboard written to {args.html_dir}: serve it with `cd benchmarks && asv preview`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
