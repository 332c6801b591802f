"""Open an HTML report in headless Chromium and check that it renders: every image loads, every
table has rows, no script error.

Debian's `chromium` runs with `--headless --no-sandbox --disable-gpu --no-first-run
--disable-background-networking` (plus a throw-away profile, no component updates, no sync, no
QUIC, a virtual-time budget, console logging on stderr, and `--dump-dom`). The page reports on
itself: `SELF_CHECK_SCRIPT`, placed at the end of <body> by the report generator, waits for the
window's load event (and any lazy images), then writes a JSON summary into
<pre id="agos-selfcheck">, which `--dump-dom` returns. Script errors anywhere in the page, also
before the self-check ran, are read from Chromium's console log ("Uncaught …").

A page without the self-check script is checked through a copy with the script added, written
beside the page (so its relative image paths still resolve) and removed afterwards.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from agos.errors import AgosError
from agos.report.selfcheck import SELF_CHECK_SCRIPT

CHROMIUM = "/usr/bin/chromium"
REQUIRED_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
)
EXTRA_FLAGS = (
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
    "--enable-logging=stderr",  # console messages, uncaught errors included, on stderr
    "--v=0",
)


_CONSOLE = re.compile(r':CONSOLE[:(]\d+\)?\] "(?P<msg>.*)", source: (?P<src>.*?) \((?P<line>\d+)\)\s*$')
_SELF_CHECK = re.compile(r'<pre[^>]*\bid="agos-selfcheck"[^>]*>(?P<json>.*?)</pre>', re.DOTALL)


class BrowserError(AgosError):
    """Chromium is missing, crashed or did not finish."""


@dataclass
class PageCheck:
    """What headless Chromium saw in a page."""

    path: str
    images_total: int = 0
    images_loaded: int = 0
    broken_images: list[str] = field(default_factory=list)
    tables_total: int = 0
    tables_with_rows: int = 0
    empty_tables: list[str] = field(default_factory=list)
    js_errors: list[str] = field(default_factory=list)
    self_check_ran: bool = False
    injected: bool = False  # the self-check was added to a copy of the page
    browser: str = ""

    @property
    def problems(self) -> list[str]:
        found = []
        if not self.self_check_ran:
            found.append("the self-check did not report (page did not finish loading?)")
        found += [f"image did not load: {src or '(no src)'}" for src in self.broken_images]
        found += [f"{t} has no body rows" for t in self.empty_tables]
        found += [f"script error: {e}" for e in self.js_errors]
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = (
            f"{self.path}: {self.images_loaded}/{self.images_total} images loaded, "
            f"{self.tables_with_rows}/{self.tables_total} tables with rows, "
            f"{len(self.js_errors)} script errors"
        )
        return head if self.ok else head + "\n  " + "\n  ".join(self.problems)


def chromium_path() -> str | None:
    """Debian's /usr/bin/chromium, else a `chromium` on PATH."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def chromium_available() -> bool:
    return chromium_path() is not None


def chromium_command(url: str, profile_dir: str, budget_ms: int, executable: str = CHROMIUM) -> list[str]:
    return [
        executable,
        *REQUIRED_FLAGS,
        *EXTRA_FLAGS,
        f"--user-data-dir={profile_dir}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
    ]


def _console_errors(stderr: str) -> list[str]:
    """Uncaught exceptions (and rejections) from Chromium's console log."""
    errors = []
    for line in stderr.splitlines():
        m = _CONSOLE.search(line)
        if m and m["msg"].startswith("Uncaught"):
            errors.append(f"{m['msg']} ({m['src']}:{m['line']})")
    return errors


def _same_error(a: str, b: str) -> bool:
    """The console's 'Uncaught TypeError: x' and the page's 'Uncaught TypeError: x (…)' or
    'TypeError: x (…)' are one error."""

    def core(s: str) -> str:
        s = s.removeprefix("Uncaught ").removeprefix("(in promise) ")
        return s.rsplit(" (", 1)[0].removeprefix("unhandled rejection: ")

    return core(a) == core(b)


def _run(command: list[str], timeout_s: float) -> tuple[str, str]:
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: a timeout ends chromium and its children
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BrowserError(f"chromium did not finish within {timeout_s:g} s") from None
    if proc.returncode != 0 and not out.strip():
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise BrowserError(f"chromium exited with code {proc.returncode}: {last}")
    return out, err


def check_page(html_path: Path | str, timeout_s: float = 60, budget_ms: int = 10000) -> PageCheck:
    """Load `html_path` in headless Chromium and report images, tables and script errors."""
    path = Path(html_path).resolve()
    if not path.is_file():
        raise BrowserError(f"{html_path} does not exist")
    executable = chromium_path()
    if executable is None:
        raise BrowserError("chromium is not installed (Debian: apt-get install chromium)")
    text = path.read_text(encoding="utf-8", errors="replace")
    injected = 'id="agos-selfcheck-script"' not in text
    target = path
    if injected:
        cut = text.lower().rfind("</body>")
        patched = (text[:cut] + SELF_CHECK_SCRIPT + text[cut:]) if cut >= 0 else text + SELF_CHECK_SCRIPT
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.stem}.selfcheck.", suffix=".html", dir=path.parent)
        except OSError as exc:
            raise BrowserError(
                f"{html_path} has no self-check script and its folder is not writable for a checked copy "
                f"({exc.strerror}); embed agos.report.selfcheck.SELF_CHECK_SCRIPT at the end of <body>"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(patched)
        target = Path(name)
    try:
        with tempfile.TemporaryDirectory(prefix="agos-chromium-") as profile:
            out, err = _run(chromium_command(target.as_uri(), profile, budget_ms, executable), timeout_s)
    finally:
        if injected:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
    check = PageCheck(path=str(html_path), injected=injected, browser=executable)
    m = _SELF_CHECK.search(out)
    page_errors: list[str] = []
    if m and m["json"].strip():
        data = json.loads(html.unescape(m["json"]))
        check.self_check_ran = True
        check.images_total = int(data["images_total"])
        check.images_loaded = int(data["images_loaded"])
        check.broken_images = list(data["broken_images"])
        check.tables_total = int(data["tables_total"])
        check.tables_with_rows = int(data["tables_with_rows"])
        check.empty_tables = list(data["empty_tables"])
        page_errors = list(data["js_errors"])
    console = _console_errors(err)
    if injected:  # name the user's page, not the temporary copy
        console = [e.replace(target.as_uri(), path.as_uri()) for e in console]
        page_errors = [e.replace(target.as_uri(), path.as_uri()) for e in page_errors]
    check.js_errors = console + [e for e in page_errors if not any(_same_error(e, c) for c in console)]
    return check


def main(argv: list[str] | None = None) -> int:
    """`python -m agos.validate.browser PAGE.html…`: exit 0 when every page passes."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m agos.validate.browser PAGE.html [PAGE.html…]", file=sys.stderr)
        return 2
    failed = 0
    for page in args:
        try:
            result = check_page(page)
        except AgosError as exc:
            print(f"{page}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(result.summary())
        failed += not result.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
