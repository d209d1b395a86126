"""A page opened in a real browser: Debian's chromium (/usr/bin/chromium), driven headless through
Playwright's driver (the wheel's; `playwright install` is never run: no browser is downloaded).
What a test asserts on: the text a person sees, console errors, uncaught page errors, and every URL
the page asked for. Any request that is not a file:// URL is aborted, so a page that reaches for the
network shows it in `requests` and sends nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (tests may run as root in a container), no GPU, and none of Chromium's own traffic.
ARGUMENTS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync")


def require_chromium() -> Path:
    """chromium's path. Without it a test is skipped on a developer's machine, but fails in CI (the
    CI variable set; .ci/run installs it): there a page no browser opened is not a checked page."""
    if CHROMIUM.is_file():
        return CHROMIUM
    message = f"chromium is not at {CHROMIUM} (Debian: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI renders every page, so its absence fails the run", pytrace=False)
    pytest.skip(message)


@dataclass
class RenderedPage:
    url: str
    text: str = ""  # document.body.innerText: what a person reads
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL asked for, the page's own included


def open_page(path: Path, screenshot: Path | None = None, width: int = 1280, height: int = 900,
              full_page: bool = True) -> RenderedPage:
    """Opens the file `path` in headless chromium; `screenshot`: also a PNG there, of the whole page
    or (`full_page` False) of its first `height` pixels."""
    from playwright.sync_api import sync_playwright  # the dev extra's: only the browser tests import it

    rendered = RenderedPage(Path(path).resolve().as_uri())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(require_chromium()), args=list(ARGUMENTS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda message: rendered.console_errors.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: rendered.page_errors.append(str(error)))
            page.on("request", lambda request: rendered.requests.append(request.url))
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else route.abort())
            page.goto(rendered.url, wait_until="load")
            rendered.text = page.inner_text("body")
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=full_page)
        finally:
            browser.close()
    return rendered
