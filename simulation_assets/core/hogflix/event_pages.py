"""The vocabulary of HogFlix product events: event names, pages, referrers, and the page table.

Events and pages are small integer codes inside the event generator; the page
table maps each (page, variant) to its path and URL, so the string columns of
an event frame are gathers from these tables.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from simulation_assets.core.hogflix.catalog import GENRES, catalog

EVENTS = (
    "$pageview",
    "$pageleave",
    "$identify",
    "user_signed_up",
    "video_opened",
    "watchlist_added",
    "video_started",
    "video_progress",
    "video_completed",
    "video_rated",
    "flixbuddy_interaction",
    "support_ticket_created",
    "plan_changed",
)
(PAGEVIEW, PAGELEAVE, IDENTIFY, SIGNED_UP, OPENED, WATCHLIST, STARTED, PROGRESS, COMPLETED, RATED, FLIXBUDDY,
 TICKET, PLAN_CHANGED) = range(len(EVENTS))  # fmt: skip

# Pages: listing pages first (indexed by entry point), then the fixed pages.
PAGES = (
    "/",  # homepage entry
    "/search",  # search entry (with ?q=)
    "/browse/{genre}",  # category entry
    "/watchlist",
    "/flixbuddy",
    "/browse/popular",  # homepage continuation: homepage -> popular -> video -> watch
    "/browse/related",  # search continuation: search -> video -> watch -> related
    "/title/{slug}",
    "/watch/{slug}",
    "/signup",
    "/help",
    "/account",
)
(HOME, SEARCH, CATEGORY, WATCHLIST_PAGE, FLIXBUDDY_PAGE, POPULAR, RELATED, TITLE, WATCH, SIGNUP, HELP,
 ACCOUNT) = range(len(PAGES))  # fmt: skip
ENTRY_PAGE = {"homepage": HOME, "search": SEARCH, "category": CATEGORY, "watchlist": WATCHLIST_PAGE,
               "flixbuddy": FLIXBUDDY_PAGE}  # fmt: skip
NEXT_PAGE = {"homepage": POPULAR, "search": RELATED, "category": CATEGORY, "watchlist": WATCHLIST_PAGE,
              "flixbuddy": FLIXBUDDY_PAGE}  # fmt: skip
TICKET_CATEGORIES = ("playback", "billing", "account", "content_request")
REFERRERS = {  # acquisition source -> (referrer, utm_source, utm_medium) of a signup's landing page
    "organic_search": ("https://www.google.com/", None, None),
    "paid_social": ("https://www.facebook.com/", "facebook", "paid_social"),
    "referral": ("https://www.reddit.com/", None, None),
    "direct": ("$direct", None, None),
    "newsletter": ("$direct", "newsletter", "email"),
    "paid_search": ("https://www.google.com/", "google", "cpc"),
    "partner": ("https://partner.example/", "partner", "affiliate"),
}
LIB_VERSION = "1.418.10"
# Lookup tables by event or page code (indexing them is cheaper than np.isin on every event).
VIDEO_EVENT = np.isin(np.arange(len(EVENTS)), (OPENED, WATCHLIST, STARTED, PROGRESS, COMPLETED, RATED))
VIDEO_PAGE = np.isin(np.arange(len(PAGES)), (TITLE, WATCH))
GENRE_PAGE = np.isin(np.arange(len(PAGES)), (SEARCH, CATEGORY))
ANON_PAGE = np.isin(np.arange(len(PAGES)), (HOME, SIGNUP))


@lru_cache(maxsize=4)
def page_tables(catalog_size: int, host: str) -> tuple[list[str], list[str], np.ndarray]:
    """Return (paths, urls, offset per page code): every page an event can be on, indexed by page code
    plus a variant (genre for search and category pages, video for title and watch pages)."""
    slugs = catalog(catalog_size)["slug"].to_list()
    paths: list[str] = []
    urls: list[str] = []
    offsets = np.zeros(len(PAGES), np.int64)
    for code, template in enumerate(PAGES):
        offsets[code] = len(paths)
        if code == SEARCH:
            variants = [("/search", f"/search?q={g}") for g in GENRES]
        elif code == CATEGORY:
            variants = [(f"/browse/{g}", f"/browse/{g}") for g in GENRES]
        elif code in (TITLE, WATCH):
            variants = [(template.format(slug=x),) * 2 for x in slugs]
        else:
            variants = [(template, template)]
        paths += [p for p, _ in variants]
        urls += [f"https://{host}{u}" for _, u in variants]
    return paths, urls, offsets
