"""`ratewise serve`'s dashboard (`GET /admin/`, docs/gateway.md, "The dashboard"), rendered by a
real browser: headless Chromium takes a screenshot and dumps the DOM of the page after a little
traffic that gives every section data (two keys, cache hits, a provider's error, a provider at
100%, one in amber and one in red).

The screenshot is decoded with Pillow and must hold regions of each bar colour: the purple
spend bars, the green, amber and red availability bars and the blue hit-rate columns, each
about as large as the page's own numbers say. The DOM must hold the key, model and provider
names, the totals and no `<script`. The admin key goes in the URL as the Basic password
(`http://ops:KEY@127.0.0.1:PORT/admin/?window=1h`), as a person would type it; a wrong one is
a 401 with a `WWW-Authenticate: Basic` challenge.

Skipped without Chromium (`RATEWISE_CHROMIUM`, or `chromium` on the PATH) or Pillow, unless
RATEWISE_REQUIRE_BROWSER=1. The screenshot is kept under the test's tmp dir; its path is
printed (`pytest -s` shows it).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import gw_fixture as g
from gw_fixture import ADMIN_KEY, KEY_A, KEY_B, micro_cost, request, sha256

REQUIRE_BROWSER_ENV = "RATEWISE_REQUIRE_BROWSER"
CHROMIUM_ENV = "RATEWISE_CHROMIUM"

OUT = 7
FLUSH_MS = 20
SETTLE_S = 0.15
WINDOW_PX = (1280, 2000)

PRICE = {"input_per_mtok": 1.25, "output_per_mtok": 3.3}
PRICE_2 = {"input_per_mtok": 0.5, "output_per_mtok": 1.75}

MOCK_MODELS = {m: {"api": "openai", "output_tokens": OUT}
               for m in ("dash-main", "dash-cache", "dash-amber", "dash-red")}

# capability -> [(provider, mock model, price)]; one provider each.
CAPS: Dict[str, List[Tuple[str, str, Dict[str, float]]]] = {
    "dash-main": [("dp-main", "dash-main", PRICE)],
    "dash-cache": [("dp-cache", "dash-cache", PRICE_2)],
    "dash-amber": [("dp-amber", "dash-amber", PRICE)],
    "dash-red": [("dp-red", "dash-red", PRICE_2)],
}

# The page's colours (gateway/src/dashboard.rs).
PURPLE = (0x6A, 0x1B, 0x9A)  # spend bars
GREEN = (0x2E, 0x7D, 0x32)   # availability >= 99%
AMBER = (0xF9, 0xA8, 0x25)   # >= 90%
RED = (0xC6, 0x28, 0x28)     # below
BLUE = (0x15, 0x65, 0xC0)    # hit-rate columns
COLOURS = {"purple": PURPLE, "green": GREEN, "amber": AMBER, "red": RED, "blue": BLUE}
TOLERANCE = 12  # per channel: bars are solid fills; only their edges are blended


def gateway_config(mock_url, tmp):
    providers, upstreams = [], {}
    for entries in CAPS.values():
        for prov, model, price in entries:
            providers.append({"name": prov, "model": model, "price": price,
                              "quotas": [g.day_requests(), g.day_tokens()]})
            upstreams[prov] = g.upstream("openai", mock_url)
    keys = [{"name": "alpha", "sha256": sha256(KEY_A)}, {"name": "beta", "sha256": sha256(KEY_B)}]
    gw = g.gateway_section(upstreams, keys, capabilities={"dash-cache": {"cache": {"enabled": True, "ttl_s": 3600}}},
                           ledger={"url": f"sqlite:{Path(tmp) / 'ledger.db'}", "flush_ms": FLUSH_MS})
    return {
        "providers": providers,
        "capabilities": [{"name": c, "providers": [{"provider": p, "priority": 10} for p, _, _ in entries]}
                         for c, entries in CAPS.items()],
        "gateway": gw,
    }


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def basic(user: str, password: str) -> Dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --------------------------------------------------------------------------------------------
# the browser


def find_chromium() -> Optional[str]:
    """RATEWISE_CHROMIUM (a path or a command name), else `chromium` (or `chromium-browser`) on
    the PATH."""
    env = os.environ.get(CHROMIUM_ENV)
    if env:
        return env if (os.path.isfile(env) and os.access(env, os.X_OK)) else shutil.which(env)
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _missing(reason: str) -> None:
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{REQUIRE_BROWSER_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        env = os.environ.get(CHROMIUM_ENV)
        _missing(f"{CHROMIUM_ENV}={env!r} is not an executable" if env
                 else f"no Chromium (set {CHROMIUM_ENV}, or put `chromium` on the PATH)")
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        _missing("Pillow is not installed (pip install pillow)")
    assert path is not None
    return path


def run_chromium(binary: str, profile: Path, url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """One headless Chromium run on a profile of its own (nothing read from or left in $HOME)."""
    cmd = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--window-size={WINDOW_PX[0]},{WINDOW_PX[1]}", "--force-device-scale-factor=1",
           "--force-color-profile=srgb", "--hide-scrollbars", "--no-first-run", "--no-default-browser-check",
           "--disable-extensions", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--metrics-recording-only", "--password-store=basic", "--use-mock-keychain",
           f"--user-data-dir={profile}", *args, url]
    profile.mkdir(parents=True, exist_ok=True)
    # A session of its own, so that a hung browser is ended with all its helper processes.
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "HOME": str(profile)}, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"Chromium did not finish in {timeout}s: {' '.join(cmd[:-1])} URL\n"
                    + err.decode("utf-8", "replace")[-3000:])
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


# --------------------------------------------------------------------------------------------
# reading the page


class PageParser(HTMLParser):
    """The dashboard's structure: each table (with the h2 above it) as rows of cell texts, the
    cards' (value, label) pairs, the SVG rects' fills, and whether a <script> appears."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: Dict[str, List[List[str]]] = {}
        self.cards: List[Tuple[str, str]] = []
        self.rect_fills: List[str] = []
        self.scripts = 0
        self._h2: Optional[str] = None
        self._in_h2 = False
        self._row: Optional[List[str]] = None
        self._cell: Optional[List[str]] = None
        self._svg = 0
        self._in_cards = 0
        self._card: Optional[List[str]] = None
        self._in_b = False
        self._div_depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        elif tag == "h2":
            self._in_h2, self._h2 = True, ""
        elif tag == "table" and self._h2 is not None:
            self.tables[self._h2] = []
        elif tag == "tr":
            self._close_cell()
            self._row = []
        elif tag in ("td", "th"):
            self._close_cell()
            self._cell = []
        elif tag == "svg":
            self._svg += 1
        elif tag == "rect":
            self.rect_fills.append((a.get("fill") or "").lower())
        elif tag == "div":
            self._div_depth += 1
            if "cards" in (a.get("class") or "").split():
                self._in_cards = self._div_depth
            elif self._in_cards and self._div_depth == self._in_cards + 1:
                self._card = ["", ""]
        elif tag == "b" and self._card is not None:
            self._in_b = True

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
        elif tag in ("td", "th"):
            self._close_cell()
        elif tag == "tr":
            self._close_cell()
            if self._row is not None and self._h2 in self.tables:
                self.tables[self._h2].append(self._row)
            self._row = None
        elif tag == "svg":
            self._svg -= 1
        elif tag == "b":
            self._in_b = False
        elif tag == "div":
            if self._card is not None and self._div_depth == self._in_cards + 1:
                self.cards.append((self._card[0].strip(), self._card[1].strip()))
                self._card = None
            elif self._in_cards and self._div_depth == self._in_cards:
                self._in_cards = 0
            self._div_depth -= 1

    def handle_data(self, data):
        if self._in_h2:
            self._h2 = (self._h2 or "") + data
        if self._cell is not None and not self._svg:
            self._cell.append(data)
        if self._card is not None:
            self._card[0 if self._in_b else 1] += data

    def _close_cell(self):
        if self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
        self._cell = None


def parse_page(html: str) -> PageParser:
    p = PageParser()
    p.feed(html)
    p.close()
    return p


def table_rows(page: PageParser, h2_prefix: str) -> Dict[str, Dict[str, str]]:
    """The table under the h2 starting with `h2_prefix`: first cell -> {header: cell}."""
    names = [h for h in page.tables if h.startswith(h2_prefix)]
    assert len(names) == 1, (h2_prefix, list(page.tables))
    rows = page.tables[names[0]]
    assert rows, f"the {h2_prefix!r} table is empty"
    head = rows[0]
    return {r[0]: dict(zip(head, r)) for r in rows[1:]}


# --------------------------------------------------------------------------------------------
# reading the screenshot


def colour_regions(img: Any, colour: Tuple[int, int, int], tol: int = TOLERANCE) -> List[Dict[str, int]]:
    """The 4-connected regions of pixels within `tol` (per channel) of `colour`, largest first:
    {"pixels", "x0", "y0", "x1", "y1"} (x1, y1 inclusive)."""
    from PIL import ImageChops

    rgb = img.convert("RGB")
    bands = []
    for band, c in zip(rgb.split(), colour):
        lo, hi = c - tol, c + tol
        bands.append(band.point(lambda v, lo=lo, hi=hi: 255 if lo <= v <= hi else 0))
    mask = ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2])
    bbox = mask.getbbox()
    if bbox is None:
        return []
    x0, y0, x1, y1 = bbox
    w = x1 - x0
    data = mask.crop(bbox).tobytes()
    todo = {i for i, v in enumerate(data) if v}
    regions = []
    while todo:
        start = todo.pop()
        stack, n = [start], 0
        rx0 = ry0 = 1 << 30
        rx1 = ry1 = -1
        while stack:
            i = stack.pop()
            n += 1
            y, x = divmod(i, w)
            rx0, rx1, ry0, ry1 = min(rx0, x), max(rx1, x), min(ry0, y), max(ry1, y)
            for j in ((i - 1) if x > 0 else -1, (i + 1) if x < w - 1 else -1, i - w, i + w):
                if j in todo:
                    todo.discard(j)
                    stack.append(j)
        regions.append({"pixels": n, "x0": rx0 + x0, "y0": ry0 + y0, "x1": rx1 + x0, "y1": ry1 + y0})
    regions.sort(key=lambda r: -r["pixels"])
    return regions


def bars(regions: List[Dict[str, int]], min_w: int = 1, min_h: int = 10) -> List[Dict[str, int]]:
    """The regions shaped like a bar of the page: 12 px high (a blended edge may cost a row or
    two), at least `min_w` wide, about filled."""
    out = []
    for r in regions:
        w, h = r["x1"] - r["x0"] + 1, r["y1"] - r["y0"] + 1
        if min_h <= h <= 13 and w >= min_w and r["pixels"] >= 0.8 * w * h:
            out.append(r)
    return out


# --------------------------------------------------------------------------------------------
# the traffic


def chat(gw, key: str, model: str, content: str = "Tell me about dashboards.", **extra: Any) -> g.Resp:
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return request(gw, "POST", "/v1/chat/completions", body, headers=g.oa_headers(key))


def drive_traffic(gw, mock) -> Dict[str, Any]:
    """The page's data, and what each number must be."""
    cost = 0
    n = 0
    per_key: Dict[str, int] = {"alpha": 0, "beta": 0}

    def ok(r, key, price):
        nonlocal cost, n
        assert r.status == 200, r
        u = r.json()["usage"]
        n += 1
        per_key[key] += 1
        if r.headers.get("x-ratewise-cache") != "hit":
            cost += micro_cost(price, u["prompt_tokens"], u["completion_tokens"])
        return r

    # Two keys on dash-main, alpha with longer prompts: different spend.
    for k in range(3):
        ok(chat(gw, KEY_A, "dash-main", "Tell me about dashboards, at length please. " * (k + 2)), "alpha", PRICE)
    for _ in range(2):
        ok(chat(gw, KEY_B, "dash-main"), "beta", PRICE)
    # beta: one error, the provider's 400 (forwarded; no availability outcome).
    mock.set_faults({"model": "dash-main", "status": 400, "count": 1})
    r = chat(gw, KEY_B, "dash-main")
    assert r.status == 400, r
    n += 1
    per_key["beta"] += 1
    # The cache: temperature 0, one miss then 9 hits.
    heads = [ok(chat(gw, KEY_A, "dash-cache", temperature=0), "alpha", PRICE_2).headers.get("x-ratewise-cache")
             for _ in range(10)]
    assert heads == ["miss"] + ["hit"] * 9, heads
    assert g.model_stats(mock, "dash-cache")["received"] == 1
    # dp-amber: one 500, then all good: 10 of 11 outcomes (90.9%).
    mock.set_faults({"model": "dash-amber", "status": 500, "count": 1})
    for _ in range(10):
        ok(chat(gw, KEY_A, "dash-amber"), "alpha", PRICE)
    # dp-red: two 500s, then the third attempt answers: 1 of 3 (33.3%).
    mock.set_faults({"model": "dash-red", "status": 500, "count": 2})
    r = ok(chat(gw, KEY_A, "dash-red"), "alpha", PRICE_2)
    assert r.headers["x-ratewise-attempts"] == "3", r.headers
    return {"requests": n, "cache_hits": 9, "errors": 1, "cost_micro_usd": cost, "per_key": per_key}


def usage(gw, group_by: str) -> List[Dict[str, Any]]:
    r = request(gw, "GET", f"/admin/usage?group_by={group_by}&window=1h", headers=ADMIN)
    assert r.status == 200, r
    return r.json()["rows"]  # type: ignore[no-any-return]


def availability(gw) -> Dict[str, Dict[str, Any]]:
    r = request(gw, "GET", "/admin/availability?window=1h", headers=ADMIN)
    assert r.status == 200, r
    return {p["provider"]: p for p in r.json()["providers"]}


def wait_for_books(gw, want: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], Dict[str, Dict[str, Any]]]:
    """The ledger once it holds every record and outcome of the traffic (and a moment later)."""
    def done():
        rows = usage(gw, "key")
        av = availability(gw)
        return (sum(r["requests"] for r in rows) >= want["requests"]
                and av.get("dp-red", {}).get("outcomes", 0) >= 3 and av.get("dp-amber", {}).get("outcomes", 0) >= 11)

    g.wait_until(done, 10.0, "the traffic's records in the ledger", 0.02)
    time.sleep(SETTLE_S)
    return usage(gw, "key"), availability(gw)


def expected_colour(a: Optional[float]) -> Tuple[int, int, int]:
    a = a or 0.0
    return GREEN if a >= 0.99 else AMBER if a >= 0.9 else RED


# --------------------------------------------------------------------------------------------
# the tests


def test_the_dashboard_in_headless_chromium(gw, mock, chromium, tmp_path):
    from PIL import Image

    want = drive_traffic(gw, mock)
    by_key, av = wait_for_books(gw, want)
    by_model = usage(gw, "model")

    # The ledger agrees with the traffic (so the page's numbers can be checked against it).
    keys = {r["key"]: r for r in by_key}
    assert set(keys) == {"alpha", "beta"}, by_key
    assert {k: keys[k]["requests"] for k in keys} == want["per_key"]
    total = {f: sum(r[f] for r in by_key) for f in ("requests", "cost_micro_usd", "cache_hits", "errors")}
    assert total == {f: want[f] for f in total}, (total, want)
    assert set(av) == {"dp-main", "dp-cache", "dp-amber", "dp-red"}, av
    assert (av["dp-red"]["outcomes"], av["dp-red"]["successes"]) == (3, 1), av["dp-red"]
    assert (av["dp-amber"]["outcomes"], av["dp-amber"]["successes"]) == (11, 10), av["dp-amber"]
    assert expected_colour(av["dp-red"]["availability"]) == RED
    assert expected_colour(av["dp-amber"]["availability"]) == AMBER
    assert expected_colour(av["dp-main"]["availability"]) == GREEN

    # The page over HTTP first: a plain answer, so a browser failure below is the browser's.
    direct = request(gw, "GET", "/admin/?window=1h", headers=basic("ops", ADMIN_KEY))
    assert direct.status == 200 and direct.headers["content-type"].startswith("text/html"), direct
    assert request(gw, "GET", "/admin/?window=1h", headers=ADMIN).text.count("<table") == 3

    url = f"http://ops:{ADMIN_KEY}@127.0.0.1:{gw.port}/admin/?window=1h"
    png = tmp_path / "dashboard.png"
    shot = run_chromium(chromium, tmp_path / "profile-shot", url, f"--screenshot={png}")
    assert shot.returncode == 0 and png.is_file(), (shot.returncode, shot.stderr[-3000:])
    print(f"\ndashboard screenshot: {png}")
    dom = run_chromium(chromium, tmp_path / "profile-dom", url, "--dump-dom")
    assert dom.returncode == 0, (dom.returncode, dom.stderr[-3000:])
    html = dom.stdout.decode("utf-8", "replace")
    (tmp_path / "dashboard.dom.html").write_text(html)

    # ---- the DOM: what the browser built from the page
    assert "ratewise gateway" in html and "admin key is required" not in html, html[:2000]
    assert "<script" not in html.lower()
    page = parse_page(html)
    assert page.scripts == 0
    assert "(window <b>1h</b>)" in html
    cards = {label: value for value, label in page.cards}
    hit_rate = f"{want['cache_hits'] * 100 / want['requests']:.1f}%"
    assert cards == {"requests": str(want["requests"]), "spent": f"${want['cost_micro_usd'] / 1e6:.4f}",
                     "cache hit rate": hit_rate, "errors": str(want["errors"])}, page.cards
    key_rows = table_rows(page, "Spend per key")
    assert set(key_rows) == {"alpha", "beta"}, key_rows
    for name, row in key_rows.items():
        assert row["requests"] == str(keys[name]["requests"]), row
        assert row["cost USD"] == f"{keys[name]['cost_micro_usd'] / 1e6:.6f}", row
        assert row["errors"] == str(keys[name]["errors"]) and row["cache hits"] == str(keys[name]["cache_hits"])
    # The model rows: the four upstream models; cache hits have no model (shown as "–").
    model_rows = table_rows(page, "Spend per model")
    assert set(model_rows) == {r["model"] or "–" for r in by_model}, (model_rows, by_model)
    assert {"dash-main", "dash-cache", "dash-amber", "dash-red"} <= set(model_rows)
    prov_rows = table_rows(page, "Providers")
    assert set(prov_rows) == {"dp-main", "dp-cache", "dp-amber", "dp-red"}, prov_rows
    for name, row in prov_rows.items():
        assert row["availability"] == f"{av[name]['availability'] * 100:.2f}%", row
        assert row["outcomes"] == str(av[name]["outcomes"]), row
    assert prov_rows["dp-red"]["availability"] == "33.33%" and prov_rows["dp-amber"]["availability"] == "90.91%"
    assert "#1565c0" in page.rect_fills and "#6a1b9a" in page.rect_fills
    assert "<h2>Cache hit rate over time</h2>" in html and "per minute" in html

    # ---- the screenshot: the bars were drawn, in their colours, about as large as they should be
    img = Image.open(png)
    assert img.size == WINDOW_PX, img.size
    found = {name: colour_regions(img, c) for name, c in COLOURS.items()}
    counts = {name: sum(r["pixels"] for r in rs) for name, rs in found.items()}
    print("pixels per colour (tolerance %d): %s" % (TOLERANCE, counts))
    for name, rs in found.items():
        print(f"  {name}: {len(rs)} regions, largest {rs[:4]}")

    # Spend bars: 160 px for the largest cost of each table, 12 px high; one per costed row.
    def spend_widths(rows: List[Dict[str, Any]]) -> List[int]:
        top = max(r["cost_micro_usd"] for r in rows)
        return [round(r["cost_micro_usd"] / top * 160) for r in rows]

    purple_w = [w for w in spend_widths(by_key) + spend_widths(by_model) if w > 0]
    purple_bars = bars(found["purple"])
    assert len(purple_bars) == len(purple_w), (purple_bars, purple_w)
    assert counts["purple"] >= 0.8 * 12 * sum(purple_w), (counts["purple"], purple_w)
    assert sorted(b["x1"] - b["x0"] + 1 for b in purple_bars) == pytest.approx(sorted(purple_w), abs=1)

    # Availability bars: round(a * 160) wide, in the provider's colour.
    for name, colour in (("green", GREEN), ("amber", AMBER), ("red", RED)):
        widths = [round(p["availability"] * 160) for p in av.values() if expected_colour(p["availability"]) == colour]
        got = bars(found[name])
        assert len(got) == len(widths), (name, got, widths)
        assert sorted(b["x1"] - b["x0"] + 1 for b in got) == pytest.approx(sorted(widths), abs=1), (name, got)
        assert counts[name] >= 0.8 * 12 * sum(widths), (name, counts[name], widths)
    assert [round(av["dp-red"]["availability"] * 160)] == [b["x1"] - b["x0"] + 1 for b in bars(found["red"])]

    # Hit-rate columns: 61 one-minute columns of the 720 px chart (a column 692/61 - 2 px wide),
    # as high as the minute's hit rate times 150 px; the traffic spans one or two minutes.
    minutes = [r for r in usage(gw, "minute") if r["requests"] > 0]
    col_w = (720 - 28) / 61 - 2
    want_blue = sum(col_w * max(r["cache_hits"] / r["requests"] * 150, 1) for r in minutes)
    blue = [r for r in found["blue"] if r["pixels"] >= 20]
    assert blue, found["blue"][:5]
    assert counts["blue"] >= 0.7 * want_blue, (counts["blue"], want_blue, minutes)
    tallest = max(r["y1"] - r["y0"] + 1 for r in blue)
    best = max(r["cache_hits"] / r["requests"] for r in minutes)
    assert tallest >= best * 150 - 2, (tallest, best, blue)
    # The columns lie below the spend and provider bars (the chart is the last section).
    lowest_bar = max(b["y1"] for b in bars(found["purple"]) + bars(found["green"]))
    assert min(r["y0"] for r in blue) > lowest_bar, (blue, lowest_bar)


def test_the_dashboard_asks_for_basic_auth_and_refuses_a_wrong_password(gw, mock):
    """No key or a wrong password: 401 with a Basic challenge (what makes a browser ask); the
    admin key as the password of any user name, or as a Bearer token: the page."""
    for headers in ({}, basic("ops", "wrong-" + ADMIN_KEY), basic("ops", KEY_A), basic(ADMIN_KEY, "x"),
                    {"Authorization": "Bearer wrong-" + ADMIN_KEY}):
        r = request(gw, "GET", "/admin/?window=1h", headers=headers)
        assert r.status == 401, (headers, r)
        challenge = r.headers.get("www-authenticate", "")
        assert challenge.startswith("Basic ") and 'realm="ratewise admin"' in challenge, r.headers
        assert ADMIN_KEY not in r.text and "ratewise gateway" not in r.text
    for headers in (basic("ops", ADMIN_KEY), basic("", ADMIN_KEY), ADMIN):
        r = request(gw, "GET", "/admin/?window=1h", headers=headers)
        assert r.status == 200 and "<h1>ratewise gateway</h1>" in r.text, (headers, r)


def test_chromium_with_a_wrong_password_gets_no_page(gw, mock, chromium, tmp_path):
    """The browser's side of a wrong password: Chromium asks without credentials, gets the
    challenge, retries once with the URL's, gets a 401 again and, having no one to ask in
    headless mode, gives up on the page (net::ERR_INVALID_AUTH_CREDENTIALS, an empty DOM):
    nothing of the dashboard is shown."""
    url = f"http://ops:wrong-{ADMIN_KEY}@127.0.0.1:{gw.port}/admin/?window=1h"
    r = run_chromium(chromium, tmp_path / "profile", url, "--dump-dom")
    html = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    assert "Spend per key" not in html and "ratewise gateway" not in html, html[:2000]
    assert "admin key is required" in html or "ERR_INVALID_AUTH_CREDENTIALS" in err, (html[:2000], err[-3000:])
