"""Full-page PNG screenshots of an HTML report at desktop and phone widths.

Usage::

    uv run --no-sync python scripts/screenshots.py REPORT.html OUTDIR

writes ``OUTDIR/<name>-desktop.png`` (1366 px wide) and ``OUTDIR/<name>-phone.png``
(390 px wide, mobile viewport emulation), each as tall as the page. Needs headless
Chromium (Debian: ``apt-get install -y chromium``; ``CHROMIUM=/path`` overrides).

Chromium's own ``--screenshot`` flag only captures the window, so this drives the
browser over the DevTools protocol on a pipe (``--remote-debugging-pipe``: fd 3 in,
fd 4 out, NUL-delimited JSON): load the page at the target width, read its height,
resize the viewport to it and capture. Standard library only; the browser runs with a
throwaway profile and every background-network feature off, and the report's own
Content-Security-Policy forbids it fetching anything.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = {"desktop": (1366, 900, False, 1.0), "phone": (390, 844, True, 2.0)}
MAX_HEIGHT = 30_000  # Chromium refuses larger captures; a page this tall is cut
TIMEOUT_S = 30.0

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)


class DevTools:
    """The smallest DevTools-protocol client: one pipe pair, one page session."""

    def __init__(self, browser: subprocess.Popen[bytes], to_browser: int, from_browser: int):
        self._browser = browser
        self._out = to_browser
        self._in = from_browser
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self.session: str | None = None

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session is not None:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if any(e.get("method") == event for e in self._events):
                self._events = [e for e in self._events if e.get("method") != event]
                return
            self._events.append(self._read())
        raise TimeoutError(f"no {event} within {TIMEOUT_S:.0f} s")

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited (code {self._browser.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        reply: dict[str, Any] = json.loads(raw)
        return reply


def find_chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (path := shutil.which(candidate)):
            return path
    sys.exit("screenshots: no Chromium found; apt-get install -y chromium (or set CHROMIUM)")


def capture(devtools: DevTools, url: str, out: Path, size: tuple[int, int, bool, float]) -> None:
    width, height, mobile, scale = size
    target = devtools.call("Target.createTarget", {"url": "about:blank"})
    devtools.session = None
    attached = devtools.call(
        "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
    )
    devtools.session = attached["sessionId"]
    devtools.call("Page.enable")
    metrics = {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile}
    devtools.call("Emulation.setDeviceMetricsOverride", metrics)
    devtools.call("Page.navigate", {"url": url})
    devtools.wait_for("Page.loadEventFired")
    page = devtools.call(
        "Runtime.evaluate",
        {"expression": "document.documentElement.scrollHeight", "returnByValue": True},
    )
    full = min(int(page["result"]["value"]), MAX_HEIGHT)
    devtools.call("Emulation.setDeviceMetricsOverride", {**metrics, "height": max(full, height)})
    shot = devtools.call("Page.captureScreenshot", {"format": "png"})
    out.write_bytes(base64.b64decode(shot["data"]))
    devtools.session = None
    devtools.call("Target.closeTarget", {"targetId": target["targetId"]})
    print(f"{out}: {width}x{full} css px")


def _above_9(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    report, outdir = Path(argv[0]).resolve(), Path(argv[1])
    if not report.is_file():
        sys.exit(f"screenshots: {report}: no such file")
    outdir.mkdir(parents=True, exist_ok=True)
    chromium = find_chromium()
    # Park the pipe ends above fd 9 so moving them onto 3 and 4 cannot clobber one another.
    to_browser_r, to_browser_w, from_browser_r, from_browser_w = (
        _above_9(fd) for pair in (os.pipe(), os.pipe()) for fd in pair
    )
    with tempfile.TemporaryDirectory(prefix="ll-chromium-") as profile:

        def wire_pipes() -> None:  # in the child: the protocol pipe is fds 3 and 4
            os.dup2(to_browser_r, 3)  # dup2 copies are inheritable, the originals are not
            os.dup2(from_browser_w, 4)

        browser = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes,
            close_fds=False,  # close_fds would close 3 and 4 after preexec_fn
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        devtools = DevTools(browser, to_browser_w, from_browser_r)
        try:
            for name, size in SIZES.items():
                capture(devtools, report.as_uri(), outdir / f"{report.stem}-{name}.png", size)
            devtools.call("Browser.close")
            browser.wait(timeout=TIMEOUT_S)
        finally:
            if browser.poll() is None:
                browser.kill()
                browser.wait()
            os.close(to_browser_w)
            os.close(from_browser_r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
