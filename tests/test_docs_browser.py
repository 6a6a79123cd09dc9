"""The docs site in a real browser: headless Chromium opens pages from a loopback server.

It checks what a reader sees: formulas drawn as MathML (no raw TeX left), every image
loaded, plots at least 800 px wide, tables that fit the content column or scroll inside
it, and no request to anywhere but the loopback server.  Chromium is driven over the
DevTools protocol (websocket-client, in the test extra); every request that is not for
127.0.0.1 goes to a proxy in this file that refuses and records it.  Needs Debian's
``chromium`` package (``.ci/run`` installs it when missing); skipped without it.

The batch-norm page's screenshot is written to
``<pytest's tmp dir>/docs_browser0/batch_norm.png``, usually
``/tmp/pytest-of-$USER/pytest-current/docs_browser0/batch_norm.png`` (printed with ``-s``).
"""
import base64
import contextlib
import http.server
import json
import os
import shutil
import struct
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest

from helpers import build_docs, loopback_server

websocket = pytest.importorskip("websocket", reason='needs websocket-client: '
                                'pip install -e ".[test]"')
# Debian's /usr/bin/chromium is a script that adds flags (extension updates, Google API
# keys) that make the browser call Google on its own: run the browser binary itself.
CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium"))
                 if p and os.access(p, os.X_OK)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                "(Debian: apt-get install chromium; .ci/run installs it)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
         "--disable-client-side-phishing-detection", "--no-pings", "--metrics-recording-only",
         "--disable-dev-shm-usage", "--disable-features=AutofillServerCommunication,NetworkTimeServiceQuerying,"
         "OptimizationHints,MediaRouter,Translate,CertificateTransparencyComponentUpdater",
         "--remote-debugging-port=0", "--window-size=1280,1000"]
# two of the pages that scripts/render_notebooks.py makes from notebooks/ at build time
NOTEBOOK_PAGES = ["notebooks/batch_norm_by_hand", "notebooks/bn_regions"]
PAGES = ["batch_norm", "maxout", "convolution", "results", *NOTEBOOK_PAGES]
MATH_PAGES = {"batch_norm", "maxout", "convolution", "notebooks/batch_norm_by_hand"}
WIDTHS = [1280, 480]        # a desktop window, and a phone, where wide tables must scroll

# What the page shows, measured in the page.  Raw TeX is a backslash command, a \( \[ \] \)
# delimiter or a dollar sign in a text node outside code.
INSPECT = """(() => {
  const content = document.querySelector(".md-content");
  const raw = [];
  const walker = document.createTreeWalker(content, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode());) {
    if (!node.parentElement.closest("pre, code, script, style")
        && /\\\\[A-Za-z]+|\\\\[()\\[\\]]|\\$/.test(node.data)) raw.push(node.data.trim());
  }
  const box = element => element.getBoundingClientRect();
  const maths = [...content.querySelectorAll("math")].filter(
    m => m.namespaceURI === "http://www.w3.org/1998/Math/MathML" && box(m).width > 0);
  // MathML layout puts a fraction's numerator above its denominator
  const fractions = [...content.querySelectorAll("mfrac")].map(
    f => box(f.children[0]).bottom <= box(f.children[1]).top + 1);
  const right = box(content).right + 1;
  const tables = [...content.querySelectorAll("table")].map(table => {
    const wrap = table.closest(".md-typeset__scrollwrap");
    return box(table).right <= right || (wrap !== null && box(wrap).right <= right
      && ["auto", "scroll"].includes(getComputedStyle(wrap).overflowX));
  });
  return {
    raw, maths: maths.length, fractions: fractions.length,
    stacked: fractions.filter(Boolean).length,
    images: [...document.images].map(i => ({src: i.currentSrc,
      loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth})),
    tables: tables.length, fitting: tables.filter(Boolean).length,
    inside: [...content.querySelectorAll("table")].filter(t => box(t).right <= right).length,
    pageWidth: document.documentElement.scrollWidth, viewport: innerWidth,
  };
})()"""


@contextlib.contextmanager
def refusing_proxy():
    """An HTTP proxy on 127.0.0.1 that refuses every request; yields (address, requests)."""
    asked = []

    class Refuse(http.server.BaseHTTPRequestHandler):
        def refuse(self):
            asked.append(f"{self.command} {self.path}")
            self.send_error(403)
        do_GET = do_HEAD = do_POST = do_PUT = do_OPTIONS = do_CONNECT = refuse

        def log_message(self, *args):
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        yield f"127.0.0.1:{proxy.server_address[1]}", asked
    finally:
        proxy.shutdown()
        proxy.server_close()


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile, proxy):
        # Loopback bypasses the proxy (Chromium's default); everything else reaches it.
        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--proxy-server={proxy}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while len(port_file.read_text().split() if port_file.exists() else []) < 2:
            assert self.process.poll() is None, f"chromium exited ({self.process.returncode})"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        self.socket = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=60,
                                                  suppress_origin=True)
        self.next_id, self.events, self.session = 0, [], None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Network.enable")

    def call(self, method, **params):
        """Send one command (to the page once attached); returns its result, keeps events."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv())
            if reply.get("id") == self.next_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method, timeout=60):
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            assert time.monotonic() < deadline, f"no {method} within {timeout} s"
            self.events.append(json.loads(self.socket.recv()))

    def open(self, url, width):
        """Load ``url`` in a window ``width`` px wide; returns the URLs it requested."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=1000,
                  deviceScaleFactor=1, mobile=False)
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        # two animation frames: the theme's scripts (table wrappers) have run
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def screenshot(self, path):
        """The whole page, 1 CSS px per pixel, as a PNG file at ``path``."""
        width, height = self.evaluate("[innerWidth, document.documentElement.scrollHeight]")
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self):
        try:
            self.session = None
            self.call("Browser.close")
            self.process.wait(timeout=20)
        except Exception:
            self.process.kill()
            self.process.wait()
        finally:
            self.socket.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site's base URL on a loopback server."""
    directory = tmp_path_factory.mktemp("site")
    result = build_docs(directory)
    assert result.returncode == 0, result.stdout + result.stderr
    with loopback_server(directory) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with refusing_proxy() as (proxy, refused):
        chromium = Browser(tmp_path_factory.mktemp("chromium-profile"), proxy)
        try:
            yield chromium
        finally:
            chromium.close()
            print("refused by the proxy (Chromium's own calls):", *refused, sep="\n  ")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_page_in_chromium(site, browser, page, width):
    chromium = browser
    requested = chromium.open(f"{site}{page}/", width)
    shown = chromium.evaluate(INSPECT)

    assert f"{site}{page}/" in requested, "the recording of requests saw nothing"
    outside = [url for url in requested
               if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname !=
               "127.0.0.1"]
    assert not outside, f"the page asked for things beyond the site: {outside}"

    assert not shown["raw"], f"raw TeX on the page: {shown['raw'][:5]}"
    if page in MATH_PAGES:
        assert shown["maths"] > 0 and shown["fractions"] > 0, shown
        assert shown["stacked"] == shown["fractions"], "fractions not laid out as MathML"

    assert all(image["loaded"] for image in shown["images"]), shown["images"]
    if page == "results":
        docs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
        with open(os.path.join(docs, "results.md")) as page_source:
            source = page_source.read()
        assert len(shown["images"]) == source.count("\n![")
        narrow = [image for image in shown["images"] if image["width"] < 800]
        assert not narrow, f"plots narrower than 800 px: {narrow}"
        assert shown["tables"] >= 5
        # the wide result tables wrap (docs/stylesheets/tables.css) rather than scroll
        assert shown["inside"] == shown["tables"], "a results table scrolls sideways"
    if page == "notebooks/bn_regions":
        assert len(shown["images"]) == 3 and min(i["width"] for i in shown["images"]) >= 800

    assert shown["fitting"] == shown["tables"], "a table sticks out of the content column"
    assert shown["pageWidth"] <= shown["viewport"], "the page scrolls sideways"


def test_batch_norm_screenshot(site, browser, tmp_path_factory):
    chromium = browser
    chromium.open(f"{site}batch_norm/", 1280)
    path = chromium.screenshot(tmp_path_factory.mktemp("docs_browser") / "batch_norm.png")
    print(f"screenshot of the batch-norm page: {path}")
    data = path.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and width == 1280 and height > 3000
