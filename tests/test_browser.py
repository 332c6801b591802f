"""The report opens in a real browser: headless Chromium loads a page and the check reports broken
images, tables without rows and script errors. Skipped, with the reason, where chromium is absent."""

from __future__ import annotations

import pytest

from agos.validate.browser import (
    REQUIRED_FLAGS,
    SELF_CHECK_SCRIPT,
    BrowserError,
    _console_errors,
    check_page,
    chromium_available,
    chromium_command,
)

needs_chromium = pytest.mark.skipif(
    not chromium_available(),
    reason="chromium is not installed (Debian: apt-get install chromium): "
    "the headless browser check cannot run here",
)


def _png(path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    ax.bar(["a", "b"], [1, 2])
    fig.savefig(path)
    plt.close(fig)


def _page(body: str, self_check: bool = True) -> str:
    script = SELF_CHECK_SCRIPT if self_check else ""
    head = "<head><meta charset='utf-8'><title>t</title></head>"
    return f"<!doctype html><html>{head}<body>{body}{script}</body></html>"


GOOD_TABLE = (
    "<table><thead><tr><th>model</th><th>speedup</th></tr></thead>"
    "<tbody><tr><td>vgg16</td><td>2.1</td></tr></tbody></table>"
)


def test_chromium_command_has_the_required_flags():
    cmd = chromium_command("file:///tmp/r.html", "/tmp/profile", 5000)
    assert cmd[0] == "/usr/bin/chromium" and cmd[-1] == "file:///tmp/r.html"
    for flag in (*REQUIRED_FLAGS, "--dump-dom", "--user-data-dir=/tmp/profile", "--virtual-time-budget=5000"):
        assert cmd.count(flag) == 1, flag
    assert REQUIRED_FLAGS == (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
    )


def test_console_log_lines_become_script_errors():
    stderr = (
        '[1:1:1127/061654.296894:INFO:CONSOLE:2] "Uncaught ReferenceError: f is not defined", '
        "source: file:///tmp/p.html (2)\n"
        '[1:1:1127/061654.296894:INFO:CONSOLE(9)] "just a log line", source: file:///tmp/p.html (9)\n'
        "[1:1:1127/061653.43:ERROR:dbus/bus.cc:405] Failed to connect to the bus\n"
    )
    assert _console_errors(stderr) == ["Uncaught ReferenceError: f is not defined (file:///tmp/p.html:2)"]


@needs_chromium
def test_a_good_page_passes(tmp_path):
    _png(tmp_path / "plot.png")
    page = tmp_path / "report.html"
    page.write_text(_page(f"<h1>report</h1>{GOOD_TABLE}<img src='plot.png' alt='plot'>"))
    check = check_page(page)
    assert check.ok, check.summary()
    assert (check.images_total, check.images_loaded) == (1, 1)
    assert (check.tables_total, check.tables_with_rows) == (1, 1)
    assert check.js_errors == [] and check.self_check_ran and not check.injected


@needs_chromium
def test_broken_images_empty_tables_and_script_errors_are_reported(tmp_path):
    _png(tmp_path / "plot.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    body = (
        f"{GOOD_TABLE}"
        "<table id='empty'><caption>per-layer speedups</caption>"
        "<thead><tr><th>layer</th></tr></thead></table>"
        "<table><tr><th>a header row, no data</th></tr></table>"  # the parser puts it in a <tbody>
        "<img src='plot.png'><img src='missing.png'><img src='corrupt.png'>"
        "<script>undefinedFunction();</script>"
    )
    page = tmp_path / "bad.html"
    page.write_text(_page(body, self_check=False))  # checked through an injected copy
    before = sorted(p.name for p in tmp_path.iterdir())
    check = check_page(page)
    assert not check.ok and check.injected and check.self_check_ran
    assert (check.images_total, check.images_loaded) == (3, 1)
    assert sorted(check.broken_images) == ["corrupt.png", "missing.png"]
    assert (check.tables_total, check.tables_with_rows) == (3, 1)
    assert check.empty_tables == ["table 2 #empty (per-layer speedups)", "table 3"]
    assert len(check.js_errors) == 1 and "undefinedFunction is not defined" in check.js_errors[0]
    assert page.as_uri() in check.js_errors[0]  # names the user's page, not the temporary copy
    assert len(check.problems) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # the copy is gone


@needs_chromium
def test_a_page_whose_self_check_never_reports_fails(tmp_path):
    page = tmp_path / "stub.html"
    # carries the self-check's marker (so nothing is injected) but not its code
    page.write_text(_page(GOOD_TABLE + '<script id="agos-selfcheck-script"></script>', self_check=False))
    check = check_page(page)
    assert not check.injected and not check.self_check_ran and not check.ok
    assert "did not report" in check.problems[0]


def test_missing_page_is_a_clear_error(tmp_path):
    with pytest.raises(BrowserError, match="does not exist"):
        check_page(tmp_path / "nope.html")
