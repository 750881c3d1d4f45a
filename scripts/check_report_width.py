#!/usr/bin/env python3
"""Is a report.html wider than the browser window? Opens each page in headless Chromium (Debian's
``chromium``) at each window width and compares the page's scroll width with the window's inner width.

Usage:  python scripts/check_report_width.py REPORT.html... [--widths 1400 800]
Prints one line per (page, width); exit 1 when a page is wider than its window, 2 when Chromium is missing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# measured once everything (embedded images included) is laid out
_PROBE = ("<script>window.addEventListener('load',function(){var d=document.documentElement;"
          "d.setAttribute('data-page-width',d.scrollWidth+'x'+window.innerWidth);});</script>")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=10000"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def page_width(html: str | Path, window: int, chromium: str | None = None, timeout: float = 120) -> tuple[int, int]:
    """(page scroll width, window inner width) in CSS px of ``html`` opened at a ``window`` px wide window."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium not found (Debian: apt-get install chromium)")
    text = Path(html).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="w2p-width-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(text.replace("</body>", _PROBE + "</body>", 1) if "</body>" in text else text + _PROBE,
                        encoding="utf-8")
        cmd = [chromium, *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", f"--window-size={window},900",
               "--dump-dom", page.as_uri()]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    found = re.search(r'data-page-width="(\d+)x(\d+)"', out.stdout)
    if not found:
        raise RuntimeError(f"chromium gave no measurement (exit {out.returncode}): {out.stderr.strip()[-300:]}")
    return int(found.group(1)), int(found.group(2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages", nargs="+", type=Path)
    ap.add_argument("--widths", type=int, nargs="+", default=[1400, 800])
    args = ap.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("check_report_width: chromium not found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    bad = 0
    for page in args.pages:
        for width in args.widths:
            scroll, inner = page_width(page, width, chromium)
            ok = scroll <= inner
            bad += not ok
            print(f"{'ok  ' if ok else 'WIDE'} {page} at {width} px: page {scroll} px, window {inner} px")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
