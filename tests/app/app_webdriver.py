"""A tiny W3C WebDriver client over HTTP (httpx) for ChromeDriver: just what the app's browser test needs.

Selenium is not a dependency; ChromeDriver speaks the W3C protocol as plain JSON over HTTP.
"""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1600"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(RuntimeError):
    pass


class Browser:
    """Headless Chromium driven through ChromeDriver (started and stopped by this object)."""

    def __init__(self, chromium: str, chromedriver: str, profile_dir: Path, download_dir: Path, log: Path):
        self.port = free_port()
        self._log = open(log, "wb")
        self.proc = subprocess.Popen([chromedriver, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600.0)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.http.get("/status").json()["value"]["ready"]:
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise WebDriverError(f"chromedriver did not start (see {log})")
            time.sleep(0.2)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": 600000, "script": 120000, "implicit": 0},
            "goog:chromeOptions": {"binary": chromium, "args": CHROMIUM_FLAGS + [f"--user-data-dir={profile_dir}"],
                                   "prefs": {"download.default_directory": str(download_dir),
                                             "download.prompt_for_download": False}}}}}
        value = self._call("POST", "/session", caps)
        self.session = value["sessionId"]
        self.capabilities = value["capabilities"]
        # Headless Chromium only saves downloads once told where (a CDP command through ChromeDriver).
        self.cdp("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})

    def _call(self, method: str, path: str, body: dict | None = None):
        r = self.http.request(method, path, json=body if body is not None else ({} if method == "POST" else None))
        data = r.json()
        value = data.get("value")
        if r.status_code != 200 or (isinstance(value, dict) and "error" in value):
            raise WebDriverError(f"{method} {path}: {r.status_code} {value}")
        return value

    def cmd(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def cdp(self, command: str, params: dict):
        return self.cmd("POST", "/goog/cdp/execute", {"cmd": command, "params": params})

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self.cmd("POST", "/elements", {"using": "css selector", "value": css})]

    def wait_for(self, css: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = self.find_all(css)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise WebDriverError(f"no element {css!r} after {timeout:.0f} s; page title: {self.title()!r}")
            time.sleep(0.5)

    def text(self, element: str) -> str:
        return self.cmd("GET", f"/element/{element}/text")

    def attribute(self, element: str, name: str):
        return self.cmd("GET", f"/element/{element}/attribute/{name}")

    def send_keys(self, element: str, text: str) -> None:
        self.cmd("POST", f"/element/{element}/value", {"text": text})

    def click(self, element: str) -> None:
        self.cmd("POST", f"/element/{element}/click")

    def title(self) -> str:
        return self.cmd("GET", "/title")

    def execute(self, script: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot_png(self) -> bytes:
        import base64

        return base64.b64decode(self.cmd("GET", "/screenshot"))

    def close(self) -> None:
        try:
            self.cmd("DELETE", "")
        except (WebDriverError, httpx.HTTPError):
            pass
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
