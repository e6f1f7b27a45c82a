"""Server-rendered HTML of the HogFlix reference web app.

Every page shares one layout: a navigation bar whose links are the session
model's entry points (home, search, category, watchlist, FlixBuddy), a JSON
configuration block the page script reads to start posthog-js, and the
bundled SDK. Links carry ``data-*`` attributes (video id, title, genre) so the
page script can attach product properties to the events a click causes.
"""

from __future__ import annotations

import json
from html import escape

import polars as pl

from simulation_assets.core.hogflix.catalog import GENRES, catalog
from simulation_assets.core.hogflix.traffic_config import FLIXBUDDY_QUESTIONS

GENRE_COLOURS = {
    "action": ("#ff5a36", "#7a1400"), "comedy": ("#ffc83d", "#8a5a00"), "sci-fi": ("#36c5ff", "#003f7a"),
    "family": ("#7be07b", "#1d6b1d"), "drama": ("#b48cff", "#3d1a7a"), "thriller": ("#ff4d8d", "#5c0a2e"),
    "documentary": ("#9fb4c7", "#2b3d4f"), "romance": ("#ff8fb1", "#7a1f3f"),
}  # fmt: skip
TICKET_CATEGORIES = ("playback", "billing", "account", "content_request")


def _attrs(video: dict) -> str:
    return (
        f'data-video-id="{escape(video["video_id"])}" data-video-title="{escape(video["title"])}" '
        f'data-genre="{escape(video["genre"])}" data-minutes="{int(video["minutes"])}" '
        f'data-slug="{escape(video["slug"])}"'
    )


def layout(prefix: str, title: str, body: str, config: dict, active: str = "") -> str:
    """Return a full page: head, navigation (entry points), ``body``, configuration and scripts."""
    nav = [
        ("home", "/", "Home"),
        ("category", "/browse/popular", "Browse"),
        ("search", "/search", "Search"),
        ("watchlist", "/watchlist", "My List"),
        ("flixbuddy", "/flixbuddy", "FlixBuddy"),
    ]
    links = "".join(
        f'<a class="nav-link{" active" if key == active else ""}" id="nav-{key}" href="{prefix}{href}">'
        f"{label}</a>"
        for key, href, label in nav
    )
    cfg = json.dumps(config).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · HogFlix</title>
<link rel="stylesheet" href="{prefix}/static/hogflix.css">
</head><body>
<header class="top"><a class="logo" href="{prefix}/">Hog<span>Flix</span></a><nav>{links}</nav>
<a class="nav-link help" id="nav-help" href="{prefix}/help">Help</a>
<a class="button small" id="nav-signup" href="{prefix}/signup">Sign up</a></header>
<main>{body}</main>
<footer>HogFlix is a reference app for synthetic traffic. Every visit here may be a simulated persona.</footer>
<script type="application/json" id="hogflix-config">{cfg}</script>
<script src="{prefix}/static/posthog.js"></script>
<script src="{prefix}/static/hogflix.js"></script>
</body></html>"""


def card(prefix: str, video: dict) -> str:
    light, dark = GENRE_COLOURS[video["genre"]]
    return (
        f'<a class="card" href="{prefix}/title/{escape(video["slug"])}" {_attrs(video)}>'
        f'<div class="poster" style="background:linear-gradient(150deg,{light},{dark})">'
        f"<span>{escape(video['title'])}</span></div>"
        f'<div class="meta">{escape(video["genre"])} · {int(video["minutes"])} min</div></a>'
    )


def row(prefix: str, heading: str, videos: list[dict], more: str = "") -> str:
    link = f'<a class="more" href="{prefix}{more}">See all</a>' if more else ""
    cards = "".join(card(prefix, v) for v in videos)
    return f'<section class="row"><h2>{escape(heading)}{link}</h2><div class="grid">{cards}</div></section>'


def popular(size: int, n: int, genre: str | None = None) -> list[dict]:
    cat = catalog(size)
    if genre is not None:
        cat = cat.filter(pl.col("genre") == genre)
    return cat.sort("popularity", descending=True).head(n).to_dicts()


def home(prefix: str, size: int) -> str:
    chips = "".join(
        f'<a class="chip" id="genre-{g}" href="{prefix}/browse/{g}">{escape(g.title())}</a>' for g in GENRES
    )
    search = search_form(prefix, "")
    rows = row(prefix, "Popular on HogFlix", popular(size, 12), "/browse/popular")
    rows += "".join(row(prefix, f"{g.title()}", popular(size, 6, g), f"/browse/{g}") for g in GENRES[:3])
    return (
        '<section class="hero"><h1>Stories that stay with you.</h1>'
        "<p>Thousands of hours of films and series. Ask FlixBuddy when you cannot decide.</p>"
        f"{search}<div class=chips>{chips}</div></section>{rows}"
    )


def search_form(prefix: str, query: str) -> str:
    return (
        f'<form class="search" action="{prefix}/search" method="get">'
        f'<input id="search-input" name="q" value="{escape(query)}" placeholder="Titles, genres">'
        '<button class="button" id="search-button" type="submit">Search</button></form>'
    )


def search(prefix: str, size: int, query: str) -> str:
    cat = catalog(size)
    q = query.strip().lower()
    hits = (
        cat.filter(pl.col("title").str.to_lowercase().str.contains(q, literal=True) | (pl.col("genre") == q))
        .sort("popularity", descending=True)
        .head(30)
        .to_dicts()
        if q
        else []
    )
    heading = f"Results for “{query}”" if q else "Search the catalog"
    related = f'<p><a id="related-link" href="{prefix}/browse/related">More like these</a></p>' if q else ""
    empty = "<p class=muted>No titles match.</p>" if q and not hits else ""
    grid = row(prefix, heading, hits) if hits else f"<h2>{escape(heading)}</h2>"
    return f"{search_form(prefix, query)}{grid}{empty}{related}"


def browse(prefix: str, size: int, genre: str) -> str:
    # Long listings, so the titles the session model opens are usually there to click.
    if genre == "popular":
        return row(prefix, "Popular now", popular(size, 60))
    if genre == "related":
        return row(prefix, "Because you searched", popular(size, 60)[6:60])
    return row(prefix, genre.title(), popular(size, size, genre))


def title(prefix: str, video: dict, size: int) -> str:
    light, dark = GENRE_COLOURS[video["genre"]]
    more = popular(size, 7, video["genre"])
    more = [v for v in more if v["video_id"] != video["video_id"]][:6]
    return (
        f'<section class="title-page"><div class="poster big" style="background:linear-gradient(150deg,'
        f'{light},{dark})"><span>{escape(video["title"])}</span></div><div class="details">'
        f'<h1>{escape(video["title"])}</h1><p class="muted">{escape(video["genre"])} · {int(video["minutes"])}'
        " min</p><p>A HogFlix original. Critics call it the kind of story you finish in one sitting.</p>"
        f'<a class="button" id="play-link" href="{prefix}/watch/{escape(video["slug"])}" {_attrs(video)}>'
        "▶ Play</a> "
        f'<button class="button ghost" id="watchlist-button" type="button" {_attrs(video)}>+ My List</button>'
        "</div></section>" + row(prefix, "More like this", more)
    )


def watch(prefix: str, video: dict) -> str:
    stars = "".join(
        f'<button class="star" type="button" id="star-{n}" data-rating="{n}" aria-label="{n} stars">★</button>'
        for n in range(1, 6)
    )
    return (
        f'<section class="player" id="player" {_attrs(video)}><div class="screen">'
        f'<span class="now">{escape(video["title"])}</span></div>'
        '<div class="bar"><div class="fill" id="progress-fill"></div></div>'
        '<div class="controls"><button class="button" id="play-button" type="button">▶ Play</button>'
        '<button class="button ghost" id="stop-button" type="button">■ Stop</button>'
        '<span id="progress-label" class="muted">0 %</span></div>'
        f'<div class="rating"><span>Rate this title</span>{stars}</div>'
        f'<p><a id="related-link" href="{prefix}/browse/related">Related titles</a></p></section>'
    )


def watchlist(prefix: str, size: int) -> str:
    return (
        '<h2>My List</h2><div class="grid" id="watchlist-items"></div>'
        '<p class="muted" id="watchlist-empty">Titles you add appear here.</p>'
        + row(prefix, "Picked for your list", popular(size, 6))
    )


def flixbuddy(prefix: str) -> str:
    options = "".join(f"<option>{escape(q)}</option>" for q in FLIXBUDDY_QUESTIONS)
    return (
        '<section class="chat"><h1>FlixBuddy</h1><p class="muted">Ask for a recommendation.</p>'
        '<div id="chat-log" class="chat-log"></div>'
        '<form id="chat-form"><input id="chat-input" list="questions" placeholder="What should I watch?">'
        f'<datalist id="questions">{options}</datalist>'
        '<button class="button" id="chat-send" type="submit">Ask</button></form></section>'
    )


def help_page() -> str:
    options = "".join(f'<option value="{c}">{c.replace("_", " ")}</option>' for c in TICKET_CATEGORIES)
    return (
        '<section class="form"><h1>Help centre</h1><form id="ticket-form">'
        f'<label>Topic <select id="ticket-category">{options}</select></label>'
        '<label>Message <textarea id="ticket-message">Playback stops after a few minutes.</textarea></label>'
        '<button class="button" id="ticket-send" type="submit">Send</button></form>'
        '<p id="ticket-done" class="muted" hidden>Thanks, we will get back to you.</p></section>'
    )


def signup() -> str:
    return (
        '<section class="form"><h1>Create your account</h1><form id="signup-form">'
        '<label>E-mail <input id="signup-email" type="email" placeholder="you@example.com"></label>'
        '<label>Plan <select id="signup-plan"><option>Basic</option><option selected>Standard</option>'
        "<option>Premium</option></select></label>"
        '<button class="button" id="signup-send" type="submit">Start watching</button></form>'
        '<p id="signup-done" class="muted" hidden>Welcome to HogFlix.</p></section>'
    )


def not_found(prefix: str) -> str:
    return f'<h1>Not found</h1><p><a href="{prefix}/">Back to HogFlix</a></p>'
