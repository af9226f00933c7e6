"""The daemon's read-only web page in a real browser: Chromium from the OS packages, driven by
Playwright's Python package with that executable (no browser download).

Acceptance of issue 15 item 4: while a paper daemon trades against the simulator, the page (which
polls its JSON endpoint) shows a trade that was not there when it loaded, and the same trade is in
the trades table; a POST from the page's own origin is refused. Skipped only where Chromium or
Playwright cannot be found, and never under CI=true (then it fails).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_daemon_paper import ROOT, daemon_env, daemons, db_rows  # noqa: F401 - fixture

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
ROW_KEYS = "Array.from(document.querySelectorAll('#trades tbody tr')).map(r => +r.dataset.key)"


def _chromium() -> str:
    explicit = os.environ.get("AI_QUANT_TEST_CHROMIUM")
    found = explicit or next((p for p in map(shutil.which, CANDIDATES) if p), None)
    if found is None or not Path(found).exists():
        _missing("no Chromium executable (install the OS package `chromium`, or set AI_QUANT_TEST_CHROMIUM)")
    return str(found)


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true must run the browser test (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture
def browser():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def _trade_keys(page) -> list[int]:
    return [int(k) for k in page.evaluate(ROW_KEYS)]


@pytest.mark.timeout(120)
def test_page_shows_a_new_trade_while_the_paper_daemon_runs(tmp_path, daemons, browser):  # noqa: F811
    env = daemon_env(tmp_path, AI_QUANT_WEB_PORT="0")
    db = tmp_path / "state" / "trading_paper.db"
    daemon = daemons(env, "web")
    url = daemon.wait_log(r"web page listening url=(http://127\.0\.0\.1:\d+/)", timeout=60).group(1)

    page = browser.new_page()
    errors: list[str] = []  # a CSP violation or a script error shows up here
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    # A function, not a bare expression: Playwright evals a bare expression on every poll, which the
    # page's CSP (no 'unsafe-eval') refuses once the first check has come back false.
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('updated')", timeout=20_000
    )
    assert page.text_content("#mode") == "[paper]"
    before = set(_trade_keys(page))
    # The page only changes through its own polling: wait for a trade row it did not show on load.
    page.wait_for_function(
        f"seen => {ROW_KEYS}.some(k => !seen.includes(k))",
        arg=sorted(before), timeout=90_000,
    )  # fmt: skip
    new = [k for k in _trade_keys(page) if k not in before]
    assert new, "a trade row appeared on the page"
    cells = page.eval_on_selector(
        f"#trades tbody tr[data-key='{new[0]}']", "r => Array.from(r.cells).map(c => c.textContent)"
    )
    row = db_rows(db, "SELECT kind, symbol FROM trades WHERE id=?", (new[0],))
    assert row and (cells[1], cells[2]) == row[0], (cells, row)
    assert page.locator("#decisions tbody tr").count() > 0
    # Market data sources: the watchlist is on the sidecar's WebSocket, shown per dex and in total,
    # as on the status line (sources=ws:N,rest:N,none:N).
    page.wait_for_function(
        "() => { const r = document.querySelector(\"#sources tbody tr[data-key='all']\");"
        " return r && +r.cells[1].textContent > 0 && r.cells[3].textContent === '0'; }", timeout=60_000,
    )  # fmt: skip
    total = page.eval_on_selector("#sources tbody tr[data-key='all']",
                                  "r => Array.from(r.cells).map(c => c.textContent)")  # fmt: skip
    main = page.eval_on_selector("#sources tbody tr[data-key='main']",
                                 "r => Array.from(r.cells).map(c => c.textContent)")  # fmt: skip
    assert main[1:] == total[1:]  # one perp dex here: the original
    assert f"sources=ws:{total[1]},rest:{total[2]},none:0" in daemon.text()

    assert errors == []
    refused = page.evaluate("fetch('/api/snapshot', {method: 'POST', body: '{}'}).then(r => r.status)")
    assert refused == 405
    assert daemon.terminate() == 0


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"AI_QUANT_WEB_PORT": "http"}, "AI_QUANT_WEB_PORT='http' is not an integer"),
        ({"AI_QUANT_WEB_HOST": "localhost"}, "AI_QUANT_WEB_HOST='localhost' is not an IP address"),
        ({"AI_QUANT_CHAT_ENABLE": "1"}, "AI_QUANT_CHAT_ENABLE=1 needs AI_QUANT_TELEGRAM_BOT_TOKEN"),
    ],
)
def test_bad_web_or_chat_config_exits_2_before_the_db_exists(tmp_path, extra, needle):
    env = daemon_env(tmp_path, **extra)
    done = subprocess.run(
        [sys.executable, "-m", "engine.daemon"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and needle in done.stderr, done.stderr
    assert not (tmp_path / "state" / "trading_paper.db").exists()
