"""Headless Chromium for tests, with the network cut off.

Playwright (the Python package) drives Debian's ``chromium``
(``apt-get install chromium``; never ``playwright install``). Every request
that does not go to 127.0.0.1/localhost or a ``file:``/``data:`` URL is
aborted, and every request is recorded, so a test can assert that nothing
left the machine.

The fixtures are registered once in ``tests/conftest.py`` (one Playwright per
session). Use in a test::

    def test_page(offline_page):
        offline_page.page.goto(url)
        assert not offline_page.external
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
_LOCAL = re.compile(r"^(file:|data:|about:|blob:|[a-z]+://(127\.0\.0\.1|localhost|\[::1\])"
                    r"(:\d+)?(/|$))", re.I)


def chromium_path() -> str | None:
    """The Chromium to use: ``$MEDLAB_CHROMIUM``, else ``/usr/bin/chromium`` or one on PATH."""
    env = os.environ.get("MEDLAB_CHROMIUM")
    if env:
        return env
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: pip install playwright (the Python package only)"
    if chromium_path() is None:
        return "Chromium is not installed: apt-get install chromium"
    return None


def is_local(url: str) -> bool:
    """True for URLs that stay on this machine."""
    return _LOCAL.match(url) is not None


@dataclass
class OfflinePage:
    """A browser page with the network cut off.

    Attributes
    ----------
    page : playwright.sync_api.Page
    requests : list of str
        Every URL the page requested (allowed or not).
    blocked : list of str
        The requests that were aborted because they would have left the machine.
    """

    page: Any
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    @property
    def external(self) -> list[str]:
        """Requests that were not local (each one was aborted)."""
        return [u for u in self.requests if not is_local(u)]


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """One headless Chromium for the test session (skipped when it is missing)."""
    missing = chromium_missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def offline_page(chromium_browser: Any) -> Iterator[OfflinePage]:
    """A fresh page (own context) whose non-local requests are aborted and all recorded."""
    with open_offline_page(chromium_browser) as record:
        yield record


@contextlib.contextmanager
def open_offline_page(chromium_browser: Any, **context_options: Any) -> Iterator[OfflinePage]:
    """A page in a new context of ``chromium_browser`` with every non-local request aborted.

    Usable outside pytest; ``context_options`` go to ``browser.new_context``
    (e.g. ``viewport``).
    """
    context = chromium_browser.new_context(**context_options)
    page = context.new_page()
    record = OfflinePage(page)
    page.on("request", lambda request: record.requests.append(request.url))

    def route(r: Any) -> None:
        if is_local(r.request.url):
            r.continue_()
        else:
            record.blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    try:
        yield record
    finally:
        context.close()
