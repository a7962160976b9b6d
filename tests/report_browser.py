"""Open a Snakemake HTML report in headless Chromium and check that every result actually renders.

Used by tests/test_report.py. Drives Debian's `chromium` through Playwright (its bundled browsers are never
downloaded): the report is a single-page app, so each result is opened the way a reader does — its category
in the menu, then its "eye" button — and what appears is checked: an image must be decoded by the browser
(natural size > 0), its size on screen is recorded and its screenshot must not be blank; an HTML table must
show rows. Network requests are blocked and recorded, so a report that needs the internet fails.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class RenderedResult:
    category: str
    label: str
    kind: str               # "img" | "html"
    width: int = 0          # natural size of an image, in pixels
    height: int = 0
    shown_width: float = 0.0   # size of the image as drawn on the page, in CSS pixels (scaled, letterbox excluded)
    shown_height: float = 0.0
    ink: float = 0.0        # share of screenshot pixels that differ from the background
    table_rows: int = 0     # rows of the first <table> of an HTML result
    caption: str = ""

    @property
    def description(self) -> str:
        """The caption's text alone (the info panel also lists the file, labels, size, rule and parameters)."""
        return self.caption.split("DESCRIPTION", 1)[-1].split("\nSIZE", 1)[0]


@dataclass
class ReportCheck:
    categories: list[str] = field(default_factory=list)  # as the menu lists them, top to bottom
    results: list[RenderedResult] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    home_text: str = ""


def _ink(png: bytes) -> float:
    """Share of pixels that differ from the most common colour (the background)."""
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.int16)
    values, counts = np.unique(a, return_counts=True)
    background = values[np.argmax(counts)]
    return float(np.mean(np.abs(a - background) > 16))


def check_report(report: str | Path, *, categories: list[str] | None = None) -> ReportCheck:
    """Open each result of each category of `report` (default: every category) in headless Chromium and describe
    what rendered."""
    from playwright.sync_api import sync_playwright

    url = Path(report).resolve().as_uri()
    check = ReportCheck()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda e: check.page_errors.append(str(e)))

            def block(route):
                check.blocked_requests.append(route.request.url)
                route.abort()

            page.route(lambda u: not u.startswith(("file:", "data:", "blob:", "about:")), block)
            page.goto(url)
            page.wait_for_selector("nav")
            check.home_text = page.inner_text("#app")
            names = set(page.evaluate("Object.keys(categories)"))
            check.categories = [line.strip() for line in page.inner_text("nav").splitlines() if line.strip() in names]
            for category in check.categories if categories is None else categories:
                page.goto(url)
                page.locator("nav").get_by_text(category, exact=True).click()
                rows = page.locator("tbody tr")
                rows.first.wait_for()
                for i in range(rows.count()):
                    row = rows.nth(i)
                    label = " | ".join(c.inner_text().strip() for c in row.locator("td").all()[:-1])
                    row.locator("a[iconname=eye]").click()
                    check.results.append(_rendered(page, category, label))
                    row.locator("a[iconname]").last.click()  # the info button: the caption
                    page.wait_for_timeout(200)
                    check.results[-1].caption = page.inner_text("#app")
                    page.goto(url)
                    page.locator("nav").get_by_text(category, exact=True).click()
                    rows = page.locator("tbody tr")
                    rows.first.wait_for()
        finally:
            browser.close()
    return check


def _rendered(page, category: str, label: str) -> RenderedResult:
    shown = "img[src^='data:image/png'], img[src^='data:image/jpeg']"  # not the menu's SVG logo
    img, frame = page.locator(shown), page.locator("iframe")
    page.wait_for_function(f"document.querySelector(\"{shown}, iframe\") !== null")
    if img.count():
        target = img.first
        target.wait_for()
        page.wait_for_function("e => e.complete", arg=target.element_handle())
        # drawn size: the element's box, less any letterbox of `object-fit: contain` (the aspect ratio is kept)
        w, h, shown_w, shown_h = target.evaluate(
            "e => { const r = e.getBoundingClientRect();"
            " const s = Math.min(r.width / e.naturalWidth, r.height / e.naturalHeight);"
            " return [e.naturalWidth, e.naturalHeight, e.naturalWidth * s, e.naturalHeight * s]; }")
        return RenderedResult(category, label, "img", width=w, height=h, shown_width=shown_w, shown_height=shown_h,
                              ink=_ink(target.screenshot()))
    frame.first.wait_for()
    inner = page.frame_locator("iframe").first
    inner.locator("table").first.wait_for()
    n_rows = inner.locator("table tbody tr").count()
    return RenderedResult(category, label, "html", table_rows=n_rows,
                          ink=_ink(frame.first.screenshot()))
