"""Event properties: per-user constants and per-event distributions, private by construction.

- Identifiers (ids, tokens, e-mails, ``$set`` payloads, names and addresses of
  people, customers' company names ...) are never modelled: the twin makes its own
  ids. A key whose values are mostly rare (seen for fewer than k users), or long
  free text, is dropped too. Every dropped key is listed with its reason in the
  spec, by name when k users carried it, else only counted (a key's name can be
  someone's data).
- Personal data inside a value, whatever the key (an e-mail address, a phone
  number, an IP address, a web token, a long run of digits), is never counted or
  copied, even when k users share it (the team page showing its admin's address).
- URLs keep scheme, host and path (and paths from the site's root keep the path);
  query strings and fragments are cut before anything is counted. In a URL seen
  for fewer than k users or holding personal data, path segments that are ids,
  tokens or e-mails become ``:id`` / ``:email``: /users/48213/invoices of every
  user is one page, /users/:id/invoices.
- A value seen for fewer than k users becomes ``other``; numbers are kept only
  as quantile sketches winsorized at the k-th extremes.
- **Per-user constants** (browser, OS, device type, country, plan ...: keys whose
  value never changes for at least 95 % of users) are drawn per user from the
  joint table of their combinations seen for at least k users (so browser, OS
  and device stay consistent); users with a rarer combination are represented by
  independent draws from each key's distribution. A number with few values that
  never changes for a user (an OS version) is one too, so iOS keeps iOS versions.
- **Per-session constants** (browser, OS, screen, entry point ...: keys that may
  change between a user's visits but whose value never changes within at least
  95 % of the sessions carrying them on two or more events) are drawn once per
  session from the joint table of their combinations over sessions, a combination
  kept only when at least k users had it (the others: each key's share over
  sessions). A number with few values, such as a screen width, can be one too; its
  values then follow the same k-user rule as categories. Drawn per event instead,
  a session would switch browser and screen between two clicks.
- **Per-event properties**: for each event name, the chance each key is present,
  and its value's distribution given the event (categories and their shares, or a
  number's sketch).
- **Keys that follow another** (a video's title and genre follow its id, a path
  follows its URL): a category whose value is the same for 99 % of the rows sharing
  the value of a key with at least as many values is stored as a lookup from that
  key's (k-anonymous) values and drawn through it, so the twin never pairs one
  video's id with another's title.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from simulation_assets.core.twin.sketch import grouped_sketches

OTHER = "other"
# Never modelled: the twin makes its own identities, sessions, pages and timestamps.
IDENTIFIER_KEYS = frozenset(
    {
        "$session_id",
        "$window_id",
        "$device_id",
        "$pageview_id",
        "$prev_pageview_id",
        "$anon_distinct_id",
        "$user_id",
        "distinct_id",
        "$distinct_id",
        "user_id",
        "token",
        "$token",
        "api_key",
        "$insert_id",
        "$time",
        "$sent_at",
        "uuid",
        "$uuid",
        "$ip",
        "$set",
        "$set_once",
        "$unset",
        "$groups",
        "$group_key",
        "$group_set",
        "$feature_flag_payloads",
        "$elements",
        "$elements_chain",
        "$raw_user_agent",
        "$session_entry_url",
        "$session_entry_referrer",
        "$timezone_offset",
    }  # fmt: skip
)
# Columns events have of their own, in an export or the twin's (generate.Generator writes the last six): a
# property of one of these names would stand in the column's place, so it is not modelled.
EVENT_COLUMNS = frozenset(
    {"uuid", "event", "timestamp", "distinct_id", "person_id", "session_id", "properties", "user_number",
     "twin_class", "partition_key", "sequence", "$session_id", "$window_id", "$device_id", "$anon_distinct_id"}
)  # fmt: skip
_IDENTIFIER_PATTERN = (
    r"(?i)(e?mail|token|secret|password|passwd|phone|mobile_?number|^ip$|_ip$|ip_?address|^\$group_[0-9]$"
    # a person's or group's properties, flattened by a CSV export ($set.name, $set_once.$initial_referrer)
    r"|^\$(set|set_once|unset|group_set|groups|initial_person_info)[.]"
    # a person's name or address, a customer's (group's) name: whom an event is about, not what it did
    r"|^(first|last|full|given|family|middle|user|display|contact|customer|owner)_?name$|^name$|surname"
    r"|address|street|postcode|postal|zip_?code|birth|ssn|iban|passport|card_?number|national_?id|tax_?id"
    r"|^(company|organi[sz]ation|org|workspace|tenant|account|customer|group)(_?(name|id|key|slug|domain))?$)"
)
# Personal data inside a text value, whatever its key: such a value is never counted or copied. E-mail
# addresses, IPv4 addresses (a first part of two or three digits: "4.12.0.1" is an app version), phone numbers
# written with their country code, JSON web tokens and runs of 9+ digits (phone, card, account numbers).
# Numbers stored as numbers are not text: the number rules take them. Ids (UUIDs, hashes) are not personal
# in themselves: a content id seen by k users is kept, one user's id is rare and becomes "other".
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
PERSONAL_PATTERN = "|".join(
    [
        _EMAIL,
        r"(?:^|[^0-9.])[0-9]{2,3}(?:\.[0-9]{1,3}){3}(?:$|[^0-9.])",
        r"\+[0-9][0-9 ().-]{6,}[0-9]",
        r"(?:^|[^0-9])(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?:$|[^0-9])",  # (555) 010-1234
        r"(?:^|[^0-9A-Za-z-])(?:[0-9]{4}[ -]){3}[0-9]{4}(?:$|[^0-9A-Za-z-])",  # a card number (not a UUID's part)
        r"(?:^|[^0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?:$|[^0-9A-Fa-f:])",  # IPv6
        r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        r"(?:^|[^0-9A-Za-z-])[0-9]{9,}(?:$|[^0-9A-Za-z-])",
    ]
)
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"  # http, https, and an app's own (myapp://)
_URLISH = rf"^(?:{_SCHEME}[^/]*)?/"
# A path segment that is an id: 5+ digits, a UUID, 16+ hex digits, or a token (16+ letters and digits in
# both cases, or 16+ lower-case letters and digits with 4+ digits, without the hyphens of a slug).
_ID_SEGMENT = "|".join(
    [
        r"^[0-9]{5,}$",
        r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}",
        r"^[0-9A-Fa-f]{16,}$",
        r"^(?:[a-z]*[0-9]){4}[a-z0-9]{8,}$",
    ]
)
_SEGMENT_EMAIL = ":email"
_SEGMENT_ID = ":id"
_URL = rf"^({_SCHEME}[^?#]*|/[^?#]*)[?#].*$"  # an absolute URL (any scheme), or a path from the site's root
CONSTANT_SHARE = 0.95  # share of users whose value never changes, for a key to be a per-user constant
MIN_PRESENT_SHARE = 0.01  # a key carried by fewer of an event's rows is left off that event
FREE_TEXT_CHARS = 120  # mean length above which a text property is taken for free text
# A number is a per-session constant only when its k-anonymous values cover this share of its rows.
SESSION_NUMBER_KEPT = 0.95
STICKY_MIN = 0.3  # a per-session key a user keeps between visits with at least this chance is sticky
MAX_COMBOS = 20_000  # rows of the per-user combination table (combinations times the dropped keys' values)
# An export's groups (PostHog's group analytics: a user's company, project ...): see group_holders.
GROUP_COLUMNS = r"^\$groups$|^\$groups\.|^\$group_[0-4]$"
FOLLOWS_SHARE = 0.99  # a key follows another when this share of its rows has the value its lookup gives
# A version (an app's, an SDK's): digits in two to four parts, an optional leading v and suffix (4.12.0-beta.1).
VERSION_PATTERN = r"^[vV]?[0-9]+(?:\.[0-9]+){1,3}(?:[-+._ ][0-9A-Za-z.+-]*)?$"
ENTRY_TV = 0.1  # a session's first rows keep their own mix when it is this far from the later rows' (or more)
ENTRY_MIN_ROWS = 30  # ... and each side has this many rows or more
# The same two rules keep apart the mix of an event's rows followed by a given event (the page viewed before a
# product's view is that product's page) from the mix of its other rows.
TREND_TV = 0.1  # a version key rolls out when its first and last weeks' mixes are this far apart (or more)


NEXT_SCHEMA = {"event": pl.String, "key": pl.String, "next": pl.String, "next_rows": pl.Float64,
               "value": pl.String, "share": pl.Float64}  # fmt: skip


BY_SCHEMA = {"event": pl.String, "key": pl.String, "by": pl.String, "by_value": pl.String, "level": pl.Int16,
             "value": pl.Float64}  # fmt: skip
BY_SHARE = 0.5  # a number is drawn given a category of its row when that explains this share of its spread


@dataclass(frozen=True)
class PropertyModel:
    kinds: dict[str, str]  # key -> category | number | integer | boolean
    constants: tuple[str, ...]
    combos: pl.DataFrame  # constant keys..., share (k-anonymous combinations)
    combo_share: float  # chance a user takes a whole combination (else per-key marginals)
    marginals: pl.DataFrame  # key, value, share
    event_keys: pl.DataFrame  # event, key, present_share, same_share, carry_share, avoid_share, back_share
    # (see _carried_shares), entry_rows (see _entry_mixes)
    categories: pl.DataFrame  # event, key, value, share, entry_share
    numbers: pl.DataFrame  # event, key, level, value
    dropped: list[dict[str, str]] = field(default_factory=list)
    urls_trimmed: int = 0
    rare_keys: int = 0  # keys dropped whose names are not listed: seen for fewer than k users, or personal
    personal_values: int = 0  # sampled values holding personal data (an e-mail, a phone number): never kept
    url_segments: int = 0  # sampled URLs with an id, token or e-mail in their path replaced by a placeholder
    session_keys: tuple[str, ...] = ()
    session_combos: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame({"share": []}, schema={"share": pl.Float64})
    )
    session_combo_share: float = 0.0  # chance a session takes a whole combination (else per-key shares)
    sticky_keys: tuple[str, ...] = ()  # per-session keys a user tends to keep (their device)
    sticky_share: float = 0.0  # chance a session takes the user's own values of the sticky keys
    session_marginals: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"key": pl.String, "value": pl.String, "share": pl.Float64}
        )
    )
    # Per-user combinations within each activity class (class, constants..., share): a class's shares add up
    # to the share of its users they cover; the others draw from the whole population's tables.
    class_combos: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"class": pl.Int16, "share": pl.Float64})
    )
    follows: dict[str, str] = field(default_factory=dict)  # key -> the key whose value gives it
    lookups: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"key": pl.String, "parent": pl.String, "parent_value": pl.String, "value": pl.String}
        )
    )
    # Values copied from another key of the row or of the session's previous row: see _copied_from.
    sources: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={
                "event": pl.String,
                "key": pl.String,
                "source": pl.String,
                "lag": pl.Int8,
                "same_share": pl.Float64,
                "copy_share": pl.Float64,
            }  # fmt: skip
        )
    )
    # The mixes of an event's rows followed by a given event, where they differ: see _next_mixes.
    next_categories: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=NEXT_SCHEMA)  # type: ignore[arg-type]
    )
    # Numbers given a category of their row (a price by its currency): see _numbers_given.
    numbers_by: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=BY_SCHEMA)  # type: ignore[arg-type]
    )
    # Version keys whose mix rolls over the window: each 7-day block's shares, values newest first (rank).
    trends: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={
                "key": pl.String,
                "block": pl.Int16,
                "value": pl.String,
                "share": pl.Float64,
                "rank": pl.Int32,
            }
        )
    )


def candidate_keys(key_stats: pl.DataFrame, limit: int) -> tuple[list[str], list[dict]]:
    """Return (keys worth modelling, dropped keys with reasons) from ``property_keys`` statistics.

    Each dropped entry carries ``users``: the most users (ids) any one event had the key for, -1 when the
    statistics do not say; :func:`listed_drops` names only keys seen for at least k users.
    """
    users = pl.col("users").max() if "users" in key_stats.columns else pl.lit(-1)
    totals = key_stats.group_by("key").agg(
        pl.col("rows").sum(), pl.col("types").str.join(",").alias("types"), users.alias("users")
    )
    totals = totals.sort(["rows", "key"], descending=[True, False])
    keep: list[str] = []
    dropped: list[dict] = []
    for row in totals.iter_rows(named=True):
        key, types = row["key"], set(filter(None, (row["types"] or "").split(",")))
        seen = int(row["users"]) if row["users"] is not None else -1
        named = pl.Series([key])
        if key in EVENT_COLUMNS - IDENTIFIER_KEYS:
            dropped.append({"key": key, "reason": "named like a column of the events", "users": seen})
        elif (
            key in IDENTIFIER_KEYS
            or named.str.contains(_IDENTIFIER_PATTERN).item()
            or named.str.contains(PERSONAL_PATTERN).item()
        ):
            dropped.append({"key": key, "reason": "identifier or personal data", "users": seen})
        elif types and types <= {"OBJECT", "ARRAY", "NULL"}:
            dropped.append({"key": key, "reason": "nested value", "users": seen})
        elif len(keep) >= limit:
            dropped.append({"key": key, "reason": "beyond the most common keys kept", "users": seen})
        else:
            keep.append(key)
    return keep, dropped


def listed_drops(dropped: list[dict], k: int) -> tuple[list[dict[str, str]], int]:
    """Return (the dropped keys whose names may be written down, how many others were dropped).

    A key's name is data too (``$feature/beta-for-jane@corp.com``, a flattened ``$set`` object's
    keys): it is listed only when PostHog defines it (``IDENTIFIER_KEYS``) or it was seen for at least
    k users and holds no personal data; the others are only counted.
    """
    named: list[dict[str, str]] = []
    hidden = 0
    for entry in dropped:
        key, users = entry["key"], int(entry.get("users", -1))
        personal = bool(pl.Series([key]).str.contains(PERSONAL_PATTERN).item())
        if key in IDENTIFIER_KEYS or (users >= k and not personal):
            named.append({"key": key, "reason": entry["reason"]})
        else:
            hidden += 1
    # By name: the order keys are met in is the export's column order, which differs between its shapes
    # (the UI's CSV lists its flattened columns by name, a batch export by first appearance in the JSON).
    return sorted(named, key=lambda entry: entry["key"]), hidden


def _template_path(value: pl.Expr) -> pl.Expr:
    """Return URLs or paths ``value`` with each path segment that is an e-mail, personal data or an id replaced."""
    seg = pl.element()
    token = (
        (seg.str.len_chars() >= 16)
        & seg.str.contains(r"^[A-Za-z0-9_]+$")
        & seg.str.contains("[A-Z]")
        & (seg.str.contains("[a-z]") & seg.str.contains("[0-9]"))
    )
    path = (
        value.str.replace(rf"^{_SCHEME}[^/]*", "")
        .str.split("/")
        .list.eval(
            pl.when(seg.str.contains(_EMAIL)).then(pl.lit(_SEGMENT_EMAIL))
            .when(seg.str.contains(PERSONAL_PATTERN) | seg.str.contains(_ID_SEGMENT) | token)
            .then(pl.lit(_SEGMENT_ID)).otherwise(seg)
        )
        .list.join("/")
    )  # fmt: skip
    return value.str.extract(rf"^({_SCHEME}[^/]*)", 1).str.replace(r"//[^/]*@", "//").fill_null("") + path


def scrub_personal(
    frame: pl.DataFrame, keys: list[str], k: int, holders: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, int, int]:
    """Return ``frame`` (``user`` and text columns ``keys``) with personal data taken out of the values.

    URLs and paths (query strings already cut) keep their shape: in one holding personal data, or seen for
    fewer than k users, a path segment that is an e-mail becomes ``:email`` and one that is an id (5+
    digits, a UUID, a hex run, a token) ``:id``; so /users/48213/invoices of every user is one page,
    /users/:id/invoices, while a page many users saw (a popular video's) stays itself. Any other text
    value holding personal data (``PERSONAL_PATTERN``) becomes a value of its user alone: rare, never
    kept. Returns (frame, values replaced, URL values whose path was changed). Works on each key's
    distinct values.
    """
    exprs = []
    personal = templated = 0
    frame = frame.with_row_index("__row")
    for key in keys:
        v = pl.col(key)
        per_value = (
            frame.group_by(key).agg(pl.len().alias("n"), pl.col("user").n_unique().alias("u")).drop_nulls(key)
        )
        if holders is not None:  # a URL seen by users of fewer than k groups is templated too
            spread = _holders_per_value(
                frame.select("user", pl.col(key).alias("value")).unique().drop_nulls(), holders
            )
            per_value = per_value.join(spread.select(pl.col("value").alias(key), pl.col("u").alias("__u")), on=key,
                                       how="left").with_columns(pl.min_horizontal("u", "__u").alias("u")).drop("__u")  # fmt: skip
        text = v.cast(pl.Float64, strict=False).is_null()
        bad = text & v.str.contains(PERSONAL_PATTERN)
        url = v.str.contains(_URLISH)
        # A URL's user and password (https://user:secret@host/) are personal wherever the URL was seen.
        bad = bad | (url & v.str.contains(rf"^{_SCHEME}[^/]*@"))
        per_value = per_value.with_columns(
            bad.alias("bad"), url.alias("url"), pl.when(url & (bad | (pl.col("u") < k))).then(_template_path(v))
            .otherwise(v).alias("new")
        ).filter(pl.col("bad") | (pl.col("new") != v))  # fmt: skip
        if per_value.is_empty():
            continue
        changed = per_value.filter(pl.col("url") & (pl.col("new") != v))
        templated += int(changed["n"].sum())
        personal += int(per_value.filter(pl.col("bad") & ~pl.col("url"))["n"].sum())
        hits = frame.select("__row", key, "user").join(per_value.select(key, "bad", "url", "new"), on=key)
        hits = hits.select(
            "__row",
            pl.when(pl.col("bad") & ~pl.col("url"))
            .then(pl.lit("\x00") + pl.col("user").cast(pl.String))
            .otherwise(pl.col("new"))
            .alias(key),
        )
        exprs.append(hits)
    for hits in exprs:
        key = hits.columns[1]
        frame = (
            frame.join(hits.rename({key: "__new"}), on="__row", how="left", maintain_order="left")
            .with_columns(pl.coalesce("__new", key).alias(key))
            .drop("__new")
        )
    return frame.drop("__row"), personal, templated


def trim_urls(frame: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, int]:
    """Return ``frame`` with query strings and fragments cut from URL values, and how many were cut."""
    cut = 0
    exprs = []
    for key in keys:
        col = pl.col(key)
        exprs.append(col.str.replace(_URL, "$1"))
        cut += int(frame.select(col.str.contains(_URL).sum()).item() or 0)
    return (frame.with_columns(exprs) if exprs else frame), cut


def _kind(values: pl.Series) -> str:
    v = values.drop_nulls()
    if v.is_empty():
        return "category"
    lowered = v.str.to_lowercase()
    if lowered.is_in(["true", "false"]).all():
        return "boolean"
    numbers = v.cast(pl.Float64, strict=False)
    if numbers.null_count() == 0:
        return "integer" if bool((numbers == numbers.round(0)).all()) else "number"
    return "category"


def fit_properties(sample: pl.DataFrame, keys: list[str], k: int, levels: int, max_categories: int,
                   dropped: list[dict], user_class: pl.DataFrame | None = None,
                   days: int = 0) -> PropertyModel:  # fmt: skip
    """Fit the property model on ``sample`` (columns: user, event, and one text column per key).

    With a ``session`` column (see :func:`sample_sessions`), keys constant within sessions are found
    and fitted per session; with a ``day`` column too (the row's day of the window, of ``days``), the mix
    of a version key that rolls out over the window is kept per week (:func:`_version_trends`). One key at
    a time (each pass reads two columns), so the cost grows with keys x rows and never builds a long
    (row x key) table.
    """
    dropped = list(dropped)
    keys = [key for key in keys if key in sample.columns]
    unit = ["session"] if "session" in sample.columns else []
    dated = ["day"] if unit and "day" in sample.columns and days > 0 else []
    day_of_row = sample["day"] if dated else None
    holders = group_holders(sample)
    sample, trimmed = trim_urls(sample.select("user", *unit, "event", *keys), keys)
    sample, personal, templated = scrub_personal(sample, keys, k, holders)
    sample = sample.with_row_index("row")
    n_users = max(sample["user"].n_unique(), 1)
    event_rows = sample.group_by("event").agg(pl.len().alias("rows"))
    kinds: dict[str, str] = {}
    constants: list[str] = []
    session_keys: list[str] = []
    key_rows, category_rows, number_parts = [], [], []
    per_event: dict[
        str, pl.DataFrame
    ] = {}  # each per-event category's (row, user, event, value, raw): lookups
    in_sessions: dict[str, pl.DataFrame] = {}  # the same with (session, event): what a session carries on
    numbers_in_sessions: dict[str, pl.DataFrame] = {}  # and each per-event number's
    number_rows: dict[str, pl.DataFrame] = {}  # each per-event number's (row, user, event, value)
    for key in keys:
        values = sample.select("row", "user", *unit, "event", pl.col(key).alias("value")).drop_nulls("value")
        if values.is_empty():
            continue
        kind = _kind(values["value"])
        users = int(values["user"].n_unique())
        if kind == "category":
            if float(values["value"].str.len_chars().mean() or 0) > FREE_TEXT_CHARS:
                dropped.append({"key": key, "reason": "free text", "users": users})
                continue
            users_per_value = _holders_per_value(values.select("user", "value").unique(), holders)
            rare_rows = values.join(users_per_value.filter(pl.col("u") < k), on="value", how="semi").height
            if rare_rows > 0.5 * values.height:
                reason = (
                    f"mostly values seen for fewer than {k} users or holding personal data (identifier-like)"
                )
                dropped.append({"key": key, "reason": reason, "users": users})
                continue
        elif _per_user_unique(values, k):
            dropped.append(
                {"key": key, "reason": "a number unique to each user (identifier-like)", "users": users}
            )
            continue
        per_session = bool(unit) and _is_session_constant(values)
        per_user = False  # a number that is a per-user constant with few values (an OS version)
        if kind in ("category", "boolean"):
            values = _suppress_rare(
                values.with_columns(pl.col("value").alias("raw")),  # (whether a row repeats the one before)
                k, max_categories, holders if kind == "category" else None,
            )  # fmt: skip
        elif per_session or _is_constant(values, n_users):
            # A number with few values (a screen width, an OS version) is one; a measurement is not.
            suppressed = _suppress_rare(values, k, max_categories)
            few = float((suppressed["value"] != OTHER).mean() or 0) >= SESSION_NUMBER_KEPT
            per_user = few and _is_constant(values, n_users)
            per_session = per_session and few
            values = suppressed if few else values
        present = (
            values.group_by("event")
            .agg(pl.len().alias("n"), pl.col("user").n_unique().alias("users"))
            .join(event_rows, on="event")
            .with_columns((pl.col("n") / pl.col("rows")).alias("present_share"))
            .filter((pl.col("present_share") >= MIN_PRESENT_SHARE) & (pl.col("users") >= k))
        )
        if present.is_empty():
            reason = f"on fewer than {k} users or {MIN_PRESENT_SHARE:.0%} of the rows of every event"
            dropped.append({"key": key, "reason": reason, "users": users})
            continue
        kinds[key] = kind
        key_rows.append(present.select("event", pl.lit(key).alias("key"), "present_share"))
        values = values.join(present.select("event"), on="event", how="semi")
        if (kind in ("category", "boolean") or per_user) and _is_constant(values, n_users):
            constants.append(key)
        elif per_session:
            session_keys.append(key)
        elif kind in ("category", "boolean"):
            per_event[key] = values.select("row", "user", "event", "value", "raw")
            if unit:
                in_sessions[key] = values.select("row", "session", "event", "value", "raw")
            category_rows.append(
                values.group_by("event", "value")
                .agg(pl.len().alias("n"))
                .select(
                    "event",
                    pl.lit(key).alias("key"),
                    "value",
                    (pl.col("n") / pl.col("n").sum().over("event")).alias("share"),
                )
            )
        else:
            number_parts.append(
                values.select("user", "event", pl.lit(key).alias("key"), pl.col("value").cast(pl.Float64))
            )
            number_rows[key] = values.select("row", "user", "event", pl.col("value").cast(pl.Float64))
            if unit:  # a video's duration on each of its events
                numbers_in_sessions[key] = values.select(
                    "row", "session", "event", pl.col("value").cast(pl.Float64)
                )
    event_keys = _concat(key_rows, {"event": pl.String, "key": pl.String, "present_share": pl.Float64})
    categories = _concat(
        category_rows, {"event": pl.String, "key": pl.String, "value": pl.String, "share": pl.Float64}
    )
    numbers = _number_sketches(
        _concat(number_parts, {"user": pl.Int64, "event": pl.String, "key": pl.String, "value": pl.Float64}),
        levels,
        k,
    )
    # A numeric (event, key) without enough values for a sketch is not generated.
    numeric = [
        key
        for key, kind in kinds.items()
        if kind in ("number", "integer") and key not in session_keys and key not in constants
    ]
    has_sketch = numbers.select("event", "key").unique()
    event_keys = pl.concat(
        [
            event_keys.filter(~pl.col("key").is_in(numeric)),
            event_keys.filter(pl.col("key").is_in(numeric)).join(has_sketch, on=["event", "key"], how="semi"),
        ]
    ).sort("event", "key")
    # Whole numbers (a rating, seconds) repeat by chance as categories do; a measurement's sketch never does.
    whole = {key: rows for key, rows in numbers_in_sessions.items() if kinds[key] == "integer"}
    measured = {key: rows for key, rows in numbers_in_sessions.items() if kinds[key] != "integer"}
    follows, lookups, follow_shares = _lookups(per_event, number_rows, k, holders)
    categories = _unlooked_mixes(categories, per_event, follows, lookups)
    entry_shares, entry_rows = _entry_mixes(
        {key: rows for key, rows in in_sessions.items() if key not in follows}
    )
    carried = pl.concat(
        [
            _carried_shares({**in_sessions, **whole}, later=entry_rows),
            _carried_shares(measured, flat=1 / (levels - 1)),
        ]
    )
    event_keys = event_keys.join(carried, on=["event", "key"], how="left").with_columns(
        pl.col("carry_share", "avoid_share", "back_share").fill_null(0.0)
    )
    event_keys = event_keys.join(follow_shares, on=["event", "key"], how="left")
    categories = categories.join(entry_shares, on=["event", "key", "value"], how="left")
    event_keys = event_keys.join(entry_rows, on=["event", "key"], how="left")
    next_categories = pl.DataFrame(schema=NEXT_SCHEMA)
    if unit:  # each row's next event in its session (none after its session's last)
        same = pl.col("session").shift(-1) == pl.col("session")
        following = sample.select("row", "user", pl.when(same).then(pl.col("event").shift(-1)).alias("next"))
        next_categories = _next_mixes(
            {key: rows for key, rows in in_sessions.items() if key not in follows}, following, entry_rows, k,
            holders,
        )  # fmt: skip
    sources = _copied_from(in_sessions, event_keys, set(follows))
    # Where another key gives the value, the key does not carry its own on (that is what the other key said).
    event_keys = event_keys.join(sources.select("event", "key", pl.lit(True).alias("__src")), on=["event", "key"],
                                 how="left").with_columns(
        *[pl.when(pl.col("__src")).then(0.0).otherwise(pl.col(c)).alias(c) for c in ("carry_share", "avoid_share",
          "back_share")]).drop("__src")  # fmt: skip
    suppressed = _suppress_all(sample, constants, k, max_categories, holders=holders, kinds=kinds)
    combos, combo_share, marginals = _constant_tables(suppressed, constants, k)
    class_combos = _class_tables(suppressed, constants, k, marginals, user_class)
    given = {key: rows.select("row", "value") for key, rows in per_event.items() if kinds[key] == "category"}
    given |= {
        key: suppressed.with_row_index("row").select("row", pl.col(key).alias("value")).drop_nulls("value")
        for key in constants
        if kinds[key] == "category"
    }
    numbers_by = _numbers_given(number_rows, given, levels, k)
    if (
        numbers_in_sessions and numbers_by.height
    ):  # a number drawn given its row's category repeats more by chance
        refit = _carry_given(numbers_in_sessions, given, numbers_by, kinds, flat=1 / (levels - 1))
        event_keys = (
            event_keys.join(refit, on=["event", "key"], how="left", suffix="_given")
            .with_columns(pl.coalesce(f"{c}_given", c).alias(c) for c in ("carry_share", "avoid_share"))
            .drop("carry_share_given", "avoid_share_given")
        )
    named, hidden = listed_drops(dropped, k)
    model = PropertyModel(kinds, tuple(constants), combos, combo_share, marginals, event_keys,
                          categories.sort("event", "key", "value"), numbers, named, trimmed, hidden, personal,
                          templated, class_combos=class_combos, follows=follows, lookups=lookups,
                          sources=sources, next_categories=next_categories,
                          numbers_by=numbers_by)  # fmt: skip
    if day_of_row is not None:  # (only keys of versions need their rows by day)
        unit_keys = [
            key for key in [*constants, *session_keys] if kinds[key] != "boolean" and _versions(sample[key])
        ]
        dated_rows = _suppress_all(sample.with_columns(day_of_row), unit_keys, k, max_categories,
                                   keep=["session", "day"], holders=holders, kinds=kinds)  # fmt: skip
        model = dataclasses.replace(model, trends=_version_trends(dated_rows, unit_keys, days, k))
    if not session_keys:
        return model
    in_sessions = _suppress_all(sample, session_keys, k, max_categories, keep=["session"], holders=holders,
                                kinds=kinds)  # fmt: skip
    s_combos, s_share, s_marginals, sticky, sticky_share = _session_tables(in_sessions, session_keys, k)
    return dataclasses.replace(model, session_keys=tuple(session_keys), session_combos=s_combos,
                               session_combo_share=s_share, session_marginals=s_marginals,
                               sticky_keys=sticky, sticky_share=sticky_share)  # fmt: skip


def _versions(values: pl.Series) -> bool:
    """Whether 90 % of ``values`` (nulls and ``other`` aside) read as versions (``VERSION_PATTERN``)."""
    named = values.drop_nulls().cast(pl.String)
    named = named.filter(named != OTHER)
    return not named.is_empty() and float(named.str.contains(VERSION_PATTERN).mean() or 0) >= 0.9


def _version_trends(rows: pl.DataFrame, keys: list[str], days: int, k: int = 1) -> pl.DataFrame:
    """Return (key, block, value, share, rank): the weekly mix of each version key that rolls out.

    ``rows``: (session, day, keys...) with rare values ``other``. A key is a version when 90 % of its
    sessions' values (``other`` aside) read as one (``4.12.0``, ``v2.3``, ``1.418.10``); it rolls out when
    its mix over sessions in the window's first 7-day block and in its last (:func:`~.arrivals.day_blocks`)
    are more than 0.1 apart (total variation) and more than three times what two samples of one mix that
    size differ by. Per block, the value's share of the block's sessions, counted only where k users had it
    that week (so a week's share never tells of fewer; a block left without any: the window's mix); ``rank``
    orders the values newest first (by the mean day of their sessions). ``rows`` carry ``user``.
    """
    from simulation_assets.core.twin.arrivals import day_blocks

    schema = {"key": pl.String, "block": pl.Int16, "value": pl.String, "share": pl.Float64, "rank": pl.Int32}
    block_of, n_blocks = day_blocks(days)
    if n_blocks < 2 or not keys or rows.is_empty():
        return pl.DataFrame(schema=schema)
    day = pl.col("day").clip(0, days - 1)
    sessions = rows.group_by("session").agg(
        pl.col("user").first(),
        day.min().alias("day"),
        *[pl.col(key).drop_nulls().mode().sort().first() for key in keys],
    )
    sessions = sessions.with_columns(pl.Series("block", block_of[sessions["day"].to_numpy()]))
    parts = []
    for key in sorted(keys):
        one = sessions.select("user", "block", "day", pl.col(key).alias("value")).drop_nulls("value")
        if not _versions(one["value"]):
            continue
        counts = one.group_by("block", "value").agg(
            pl.len().alias("n"), pl.col("day").sum().alias("days"), pl.col("user").n_unique().alias("u")
        )
        values = (
            counts.group_by("value")
            .agg((pl.col("days").sum() / pl.col("n").sum()).alias("mean_day"), pl.col("n").sum())
            .sort(["mean_day", "value"], descending=[True, False])
            .with_row_index("rank")
        )
        grid = pl.DataFrame({"block": np.arange(n_blocks)}).join(values.select("value", "rank"), how="cross")
        weekly = counts.select(
            "block", "value", pl.when(pl.col("u") >= k).then(pl.col("n")).otherwise(0).alias("n")
        )
        mix = grid.join(weekly, on=["block", "value"], how="left").with_columns(pl.col("n").fill_null(0))
        total = np.array(values["n"], np.float64)
        table = mix.sort("block", "rank")["n"].to_numpy().reshape(n_blocks, values.height).astype(np.float64)
        sizes = table.sum(axis=1)
        shares = np.where(sizes[:, None] > 0, table / np.maximum(sizes, 1)[:, None], total / total.sum())
        first, last = 0, n_blocks - 1
        tv = 0.5 * float(np.abs(shares[first] - shares[last]).sum())
        pooled = total / total.sum()
        n1, n2 = max(sizes[first], 1), max(sizes[last], 1)
        noise = 0.5 * float(np.sqrt(2 / np.pi) * np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)).sum())
        if tv <= TREND_TV or tv <= 3 * noise:
            continue
        parts.append(
            pl.DataFrame(
                {
                    "key": key,
                    "block": np.repeat(np.arange(n_blocks), values.height),
                    "value": np.tile(values["value"].to_numpy(), n_blocks),
                    "share": np.round(shares.ravel(), 6),
                    "rank": np.tile(values["rank"].to_numpy(), n_blocks),
                }
            )
        )
    return _concat(parts, schema)  # type: ignore[arg-type]


def sample_sessions(sample: pl.DataFrame, idle_minutes: float) -> pl.DataFrame:
    """Return ``sample`` (user, timestamp, ...) ordered by user and time, with a ``session`` number per row.

    A session ends after ``idle_minutes`` without an event of its user (the sample holds whole users,
    so these are the users' visits as the fit's sessions see them, up to the 24-hour cut).
    """
    ordered = sample.sort("user", "timestamp", maintain_order=True)
    new = (pl.col("user") != pl.col("user").shift(1)) | (
        pl.col("timestamp").diff() > pl.duration(milliseconds=int(idle_minutes * 60_000))
    )
    return ordered.with_columns(new.fill_null(True).cum_sum().cast(pl.Int64).alias("session"))


def _concat(parts: list[pl.DataFrame], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat([p.select([pl.col(c).cast(t) for c, t in schema.items()]) for p in parts])


def _is_constant(values: pl.DataFrame, n_users: int) -> bool:
    """Whether a key's value never changes for 95 % of the users carrying it, and most users carry it."""
    per_user = values.group_by("user").agg(pl.col("value").n_unique().alias("n"))
    if per_user.height < 0.5 * n_users:
        return False
    return float((per_user["n"] == 1).mean()) >= CONSTANT_SHARE


def _is_session_constant(values: pl.DataFrame) -> bool:
    """Whether a key's value (column ``value``) never changes within 95 % of the sessions carrying it twice or more.

    Those sessions must hold at least half of the key's rows: a key seen once per session says nothing.
    """
    per_session = values.group_by("session").agg(
        pl.len().alias("rows"), pl.col("value").n_unique().alias("n")
    )
    repeated = per_session.filter(pl.col("rows") >= 2)
    if repeated.is_empty() or int(repeated["rows"].sum()) < 0.5 * values.height:
        return False
    return float((repeated["n"] == 1).mean()) >= CONSTANT_SHARE


def _per_user_unique(values: pl.DataFrame, k: int) -> bool:
    """Return whether ``values`` (user, value) hold one value per user that few other users share."""
    pairs = values.select("user", "value").unique()
    if pairs.is_empty() or pairs.height > 1.05 * pairs["user"].n_unique():
        return False  # values change within users: a measurement, not an identity
    users_per_value = pairs.group_by("value").agg(pl.len().alias("u"))
    rare_users = users_per_value.filter(pl.col("u") < k)["u"].sum()
    return rare_users > 0.5 * pairs.height


def group_holders(sample: pl.DataFrame) -> pl.DataFrame | None:
    """Return (user, one column per group type: the user's group of that type, else the user alone), or None.

    ``sample``'s group columns (:data:`GROUP_COLUMNS`): ``$groups`` (PostHog's object of group type -> key,
    as JSON text), its flattened ``$groups.<type>`` columns or ``$group_0``..``$group_4``. A user's group of
    a type is the one most of their rows name; a user without one is a group of their own. None when the
    sample names no group: values are then counted by users alone.
    """
    columns = [c for c in sample.columns if re.match(GROUP_COLUMNS, c)]
    if not columns:
        return None
    rows = sample.select("user", *columns)
    if "$groups" in columns:
        objects = rows["$groups"].cast(pl.String)
        is_object = objects.str.starts_with("{").fill_null(False)
        if bool(is_object.any()):
            decoded = objects.filter(is_object).str.json_decode(infer_schema_length=None)
            if isinstance(decoded.dtype, pl.Struct):
                fields = decoded.struct.unnest()
                fields = fields.select(
                    pl.col(c).cast(pl.String).alias(f"$groups.{c}") for c in fields.columns
                )
                rows = pl.concat([rows.filter(is_object).drop("$groups"), fields], how="horizontal")
            else:
                rows = rows.drop("$groups")
        else:
            rows = rows.drop("$groups")
    types = [c for c in rows.columns if c != "user" and c != "$groups"]
    if not types or all(rows[c].null_count() == rows.height for c in types):
        return None
    per_user = rows.group_by("user").agg(
        pl.col(c).cast(pl.String).drop_nulls().mode().sort().first() for c in types
    )
    alone = pl.lit("\x00") + pl.col("user").cast(pl.String)
    everyone = sample.select("user").unique().join(per_user, on="user", how="left")
    return everyone.select(
        "user", *[pl.coalesce(pl.col(c), alone).alias(f"__group{i}") for i, c in enumerate(types)]
    )


def _holders_per_value(pairs: pl.DataFrame, holders: pl.DataFrame | None) -> pl.DataFrame:
    """Return (value, users, u) for distinct (user, value) ``pairs``: u the users, or with ``holders``
    (:func:`group_holders`) the fewest distinct groups of any type among them (a value only one account's
    users saw is that account's data, however many of them saw it)."""
    if holders is None:
        return pairs.group_by("value").agg(pl.len().alias("users"), pl.len().alias("u"))
    groups = [c for c in holders.columns if c != "user"]
    return (
        pairs.join(holders, on="user", how="left")
        .group_by("value")
        .agg(pl.len().alias("users"), *[pl.col(c).n_unique() for c in groups])
        .select("value", "users", pl.min_horizontal("users", *groups).alias("u"))
    )


def _suppress_rare(
    values: pl.DataFrame, k: int, max_categories: int, holders: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Replace values (column ``value``) seen for fewer than k users (of k groups, with ``holders``), or beyond
    the most common, by ``other``."""
    users = _holders_per_value(values.select("user", "value").unique(), holders)
    common = (
        users.filter(pl.col("u") >= k).sort(["users", "value"], descending=[True, False]).head(max_categories)
    )
    allowed = common["value"].to_list()
    return values.with_columns(
        pl.when(pl.col("value").is_in(allowed)).then(pl.col("value")).otherwise(pl.lit(OTHER)).alias("value")
    )


def _suppress_all(
    sample: pl.DataFrame,
    keys: list[str],
    k: int,
    max_categories: int,
    keep: list[str] | None = None,
    holders: pl.DataFrame | None = None,
    kinds: dict[str, str] | None = None,
) -> pl.DataFrame:
    """Return ``sample`` (user, ``keep`` + ``keys``) with each key's rare values replaced by ``other`` (text
    categories counted by groups too, with ``holders``)."""
    out = sample.select("user", *(keep or []))
    for key in keys:
        col = sample.select("user", pl.col(key).alias("value"))
        by = holders if (kinds or {}).get(key, "category") == "category" else None
        kept = _suppress_rare(col.drop_nulls("value"), k, max_categories, by)["value"].unique().to_list()
        out = out.with_columns(
            pl.when(sample[key].is_null()).then(None).when(sample[key].is_in(kept)).then(sample[key])
            .otherwise(pl.lit(OTHER)).alias(key)
        )  # fmt: skip
    return out


def _constant_tables(
    sample: pl.DataFrame, constants: list[str], k: int
) -> tuple[pl.DataFrame, float, pl.DataFrame]:
    """Return (k-anonymous combinations with shares, share of users they cover, per-key marginals).

    With many per-user keys, most users' full combination is rarer than k (a device model, an OS version
    and a time zone), and drawn key by key the twin pairs a Pixel with iOS. So the users left out are
    combined over fewer keys: the keys are dropped one by one, the one least tied to any other first (the
    largest normalized mutual information with another key, :func:`_drop_order`), and at each step the
    users whose combination of the keys left is seen for k users are covered by it, the dropped keys
    drawn from their own shares (a row per value: a combination of k users times values of k users).
    """
    if not constants:
        return (
            pl.DataFrame({"share": []}, schema={"share": pl.Float64}),
            0.0,
            pl.DataFrame(schema={"key": pl.String, "value": pl.String, "share": pl.Float64}),
        )
    per_user = _per_user_values(sample, constants)
    marginals = _marginal_shares(per_user, constants).sort("key", "value", nulls_last=True)
    combos, covered = _covering_combos(per_user, constants, k, marginals)
    return combos.with_columns(pl.col("share") / max(covered, 1e-12)), covered, marginals


def _per_user_values(sample: pl.DataFrame, constants: list[str]) -> pl.DataFrame:
    """Return one row per user: the user's most frequent value of each constant key."""
    return sample.group_by("user").agg(pl.col(c).drop_nulls().mode().first().alias(c) for c in constants)


def _covering_combos(
    per_user: pl.DataFrame, constants: list[str], k: int, marginals: pl.DataFrame
) -> tuple[pl.DataFrame, float]:
    """Return (combinations with their shares of ``per_user``'s users, the share they cover): see
    :func:`_constant_tables`."""
    n = max(per_user.height, 1)
    parts: list[pl.DataFrame] = []
    rest, keys, dropped = per_user, list(constants), []
    order = _drop_order(per_user, constants)
    while keys and rest.height:
        kept = rest.group_by(keys).agg(pl.len().alias("users")).filter(pl.col("users") >= k)
        if kept.height:
            part = kept.select(*keys, (pl.col("users") / n).alias("share"))
            for key in dropped:  # drawn from its own shares, beside the combination of the others
                shares = marginals.filter(pl.col("key") == key).select(
                    pl.col("value").alias(key), pl.col("share").alias("__s")
                )
                part = (
                    part.join(shares, how="cross").with_columns(pl.col("share") * pl.col("__s")).drop("__s")
                )
                if part.height > MAX_COMBOS:
                    break
            if part.height > MAX_COMBOS:
                break
            parts.append(part.select(*constants, "share"))
            rest = rest.join(kept.select(keys), on=keys, how="anti", nulls_equal=True)
        dropped.append(order[len(dropped)])
        keys.remove(dropped[-1])
    schema = {c: pl.String for c in constants} | {"share": pl.Float64}
    combos = pl.concat([p.cast(schema) for p in parts]) if parts else pl.DataFrame(schema=schema)  # type: ignore[arg-type]
    # One row per combination, its shares added in a fixed order (a group-by's float sums vary run to run).
    combos = combos.sort([*constants, "share"], nulls_last=True)
    first = combos.select(pl.struct(constants).is_first_distinct()).to_series().to_numpy()
    starts = np.flatnonzero(first)
    share = np.add.reduceat(combos["share"].to_numpy(), starts) if starts.size else np.zeros(0)
    return combos[starts.tolist()].with_columns(pl.Series("share", share)), float(np.sum(share))


def _class_tables(
    sample: pl.DataFrame,
    constants: list[str],
    k: int,
    marginals: pl.DataFrame,
    user_class: pl.DataFrame | None,
) -> pl.DataFrame:
    """Return (class, constants..., share): each activity class's own combinations (see :func:`_constant_tables`,
    k users within the class), shares of the class's users, adding up to the share covered.

    Who uses a product how goes with what they use it on: a news site's loyal readers read on a desktop, its
    drive-by readers on a phone; drawn from the whole population, a class gets everyone's devices.
    """
    schema = {"class": pl.Int16, **{c: pl.String for c in constants}, "share": pl.Float64}
    if not constants or user_class is None or user_class.is_empty():
        return pl.DataFrame(schema=schema)
    per_user = _per_user_values(sample, constants).join(user_class, on="user", how="inner")
    parts = []
    for c in sorted(per_user["class"].unique().to_list()):
        combos, _ = _covering_combos(
            per_user.filter(pl.col("class") == c).drop("class"), constants, k, marginals
        )
        parts.append(combos.select(pl.lit(c, pl.Int16).alias("class"), *constants, "share"))
    return pl.concat([p.cast(schema) for p in parts]) if parts else pl.DataFrame(schema=schema)  # type: ignore[arg-type]


def _drop_order(per_user: pl.DataFrame, keys: list[str]) -> list[str]:
    """Return ``keys`` from the least to the most tied to another key.

    A key's tie: its largest normalized mutual information I(X; Y) / min(H(X), H(Y)) with any other key
    over the users (1: one key gives the other, as a device model gives its OS; 0: independent, as a time
    zone and a browser). Ties: the key with more values first, then by name.
    """

    def entropy(cols: list[str]) -> float:
        p = np.sort(per_user.group_by(cols).agg(pl.len())["len"].to_numpy()) / max(per_user.height, 1)
        return float(-(p * np.log(p)).sum())

    h = {key: entropy([key]) for key in keys}
    tie = {}
    for key in keys:
        best = 0.0
        for other in keys:
            if other == key or min(h[key], h[other]) <= 0:
                continue
            best = max(best, (h[key] + h[other] - entropy([key, other])) / min(h[key], h[other]))
        tie[key] = best
    values = {key: per_user[key].n_unique() for key in keys}
    return sorted(keys, key=lambda key: (round(tie[key], 6), -values[key], key))


def _marginal_shares(rows: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Return (key, value, share): each key's values and their shares of ``rows`` (users or sessions)."""
    counts = pl.concat(
        [
            rows.group_by(c)
            .agg(pl.len().alias("n"))
            .select(pl.lit(c).alias("key"), pl.col(c).cast(pl.String).alias("value"), "n")
            for c in keys
        ]
    )
    return counts.with_columns((pl.col("n") / pl.col("n").sum().over("key")).alias("share")).drop("n")


def _session_tables(
    sample: pl.DataFrame, keys: list[str], k: int
) -> tuple[pl.DataFrame, float, pl.DataFrame, tuple[str, ...], float]:
    """Return (combinations over sessions seen for at least k users, share of sessions they cover, per-key
    shares, the sticky keys and the chance a session takes the user's own values of them).

    A session's value of a key is its most frequent one (ties: the smallest), null when no event of the
    session carries the key; shares count sessions. Stickiness: see :func:`_sticky_share`.
    """
    sessions = sample.select("session", "user").unique("session").sort("session")
    for key in keys:
        top = (
            sample.select("session", pl.col(key).alias("v"))
            .drop_nulls("v")
            .group_by("session", "v")
            .agg(pl.len().alias("n"))
            .sort(["session", "n", "v"], descending=[False, True, False])
            .unique("session", keep="first", maintain_order=True)
            .select("session", pl.col("v").alias(key))
        )
        sessions = sessions.join(top, on="session", how="left")
    combos = sessions.group_by(keys).agg(pl.len().alias("sessions"), pl.col("user").n_unique().alias("users"))
    kept = combos.filter(pl.col("users") >= k)
    covered = float(kept["sessions"].sum() / max(sessions.height, 1))
    kept = kept.select(*keys, (pl.col("sessions") / pl.col("sessions").sum()).alias("share"))
    marginals = _marginal_shares(sessions, keys)
    sticky = tuple(key for key in keys if _sticky_share(sessions, [key]) >= STICKY_MIN)
    share = round(_sticky_share(sessions, list(sticky)), 6) if sticky else 0.0
    kept, marginals = kept.sort(keys, nulls_last=True), marginals.sort("key", "value", nulls_last=True)
    return kept, covered, marginals, sticky, share


def _sticky_share(sessions: pl.DataFrame, keys: list[str]) -> float:
    """Return r, the chance a session takes its user's own values of ``keys`` (else a fresh draw).

    ``sessions``: one row per session (user, the keys' values) in each user's time order. In the twin
    each user has own values (one draw) and each session takes them with chance r, else draws afresh;
    two sessions in a row then agree with chance M = r^2 + (1 - r^2) c, c the chance two draws agree
    (the sum of squared shares). r solves that for M measured on the export's consecutive sessions.
    """
    value = pl.concat_str([pl.col(key).cast(pl.String).fill_null("\x00") for key in keys], separator="\x1f")
    both = sessions.select("user", value.alias("v"))
    pairs = both.filter(pl.col("user") == pl.col("user").shift(1))
    if pairs.is_empty():
        return 0.0
    agree = float((both["v"] == both["v"].shift(1)).filter(both["user"] == both["user"].shift(1)).mean() or 0)
    chance = float((both["v"].value_counts(normalize=True)["proportion"] ** 2).sum())
    return float(min(1.0, np.sqrt(max(agree - chance, 0.0) / max(1 - chance, 1e-12))))


def _carried_shares(
    in_sessions: dict[str, pl.DataFrame], flat: float = 0.0, later: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Return (event, key, same_share, carry_share, avoid_share, back_share): how an event's value of a key
    relates to its session's current one.

    ``in_sessions``: each per-event category's (row, session, event, value) rows, rare values already
    ``other``, rows in each user's time order. A page-leave, a click or a video's progress carries the URL
    (the video) of the page the user is on, the value of the session's previous row with the key:
    ``same_share`` M is the share of an event's rows (those with such a previous row) equal to it, on the
    values as they were (a ``raw`` column) when the rows have them: two rare values are both ``other``, but
    one rare page after another is not the same page, and the twin, which writes ``other`` for each, must
    not repeat it more often than the export repeats a page (a news site's readers, whose thousands of
    articles are mostly ``other``, are on the page before 1.6 % of the time, not 13 %). Drawn
    afresh from the event's shares, a row would agree by chance c = sum_v p(v) q(v), p the event's shares
    and q those of the previous values on its rows; the twin copies the previous value with chance
    r = (M - c) / (1 - c) (0 when c is 1: one value, nothing to carry) and draws afresh otherwise. Numbers
    that are not whole come from a quantile sketch, which gives a value twice only where the value holds a
    flat step of it (a share of at least ``flat``): c counts those values only (a measurement's c is 0 and
    r = M; hours booked of 0.5, 1, 2, 4 or 8 repeat by chance a quarter of the time, counted as 0 the twin
    repeated them 0.39 of the time against the export's 0.24).

    Values that move on (a video's progress at 25, 50 and 75 %, pages a visitor walks through, a user's
    count of support tickets) repeat less often than chance: M < c. The twin then draws, with chance s, a
    value other than the previous one where its draw equals it, so M = c (1 - s) and s = 1 - M / c
    (``avoid_share``). An event of
    one value whose rows follow rows of that value (a sign-up on the sign-up page, the page before it the
    same page) cannot carry anything: there the row before takes the event's value, with chance
    b = (M - o) / (a - o) (``back_share``), o the chance it has it from its own event's mix alone (a
    level's start after a level's end, both on the level screen, needs nothing; a purchase after a screen
    that is the shop one time in ten needs most) and a the share of rows before whose event has the value in
    its mix (only those take it: a payroll export, always on the approvals page, is not moved to the
    timesheet page by the sign-off that follows it), so the twin's page before a sign-up is the sign-up page as
    the export's is, also where a few rows before are elsewhere (c < 1; taken for a carry of
    (M - c) / (1 - c) = 0, the twin's page before a SaaS's sign-up was its sign-up page 0.014 of the time,
    the export's 0.999; with b = M, a game's lobby screens before a level's start became level screens).

    ``later`` (event, key): the keys whose session's first rows have a mix of their own (:func:`_entry_mixes`),
    whose other rows the twin draws from the later rows' mix: there p is that mix (the rows with a previous
    value are those rows). A task board's first page view is always the board and later ones any of four
    pages: counted with the first rows, c was 0.38 against M = 0.25, and the twin, drawing the later rows
    from their own even mix and then avoiding repeats, repeated a page 0.17 of the time against 0.25.
    """
    schema = {"event": pl.String, "key": pl.String, "same_share": pl.Float64, "carry_share": pl.Float64,
              "avoid_share": pl.Float64, "back_share": pl.Float64}  # fmt: skip
    parts = []
    for key, rows in sorted(in_sessions.items()):
        raw = "raw" if "raw" in rows.columns else "value"
        in_session = pl.col("session") == pl.col("session").shift(1)
        rows = rows.sort("row").with_columns(
            pl.when(in_session).then(pl.col("value").shift(1)).alias("prev"),
            pl.when(in_session).then(pl.col(raw).shift(1)).alias("prev_raw"),
            pl.when(in_session).then(pl.col("event").shift(1)).alias("prev_event"),
        )
        pairs = rows.drop_nulls("prev")
        if pairs.is_empty():
            continue
        same = pairs.group_by("event").agg((pl.col(raw) == pl.col("prev_raw")).mean().alias("same_share"))
        own = (
            rows.group_by("event", "value")
            .agg(pl.len().alias("n"))
            .with_columns((pl.col("n") / pl.col("n").sum().over("event")).alias("p"))
        )
        # The chance the row before has the row's value from its own event's mix alone (a level's start after
        # a level's end is on the level screen whatever carries it): what a back-fill need not add.
        by_own = (
            pairs.join(own.select(pl.col("event").alias("prev_event"), "value", pl.col("p").alias("by_own")),
                       on=["prev_event", "value"], how="left")
            .group_by("event")
            .agg(pl.col("by_own").fill_null(0.0).mean(), (pl.col("by_own").fill_null(0.0) > 0).mean().alias("can"))
        )  # fmt: skip
        drawn_from = own
        if (
            later is not None
        ):  # the rows after a session's first: p their own mix where the twin draws them so
            apart = later.filter(pl.col("key") == key).select("event")
            if apart.height:
                later_p = (
                    pairs.join(apart, on="event", how="semi")
                    .group_by("event", "value")
                    .agg(pl.len().alias("n"))
                    .with_columns((pl.col("n") / pl.col("n").sum().over("event")).alias("p"))
                )
                drawn_from = pl.concat([own.join(apart, on="event", how="anti"), later_p.select(own.columns)])
        before = (
            pairs.group_by("event", pl.col("prev").alias("value"))
            .agg(pl.len().alias("m"))
            .with_columns((pl.col("m") / pl.col("m").sum().over("event")).alias("q"))
        )
        chance = (
            drawn_from.filter(pl.col("p") >= flat)
            .join(before, on=["event", "value"], how="inner")
            .group_by("event")
            .agg((pl.col("p") * pl.col("q")).sum().alias("c"))
        )
        values = own.group_by("event").agg(
            pl.len().alias("values"), (pl.col("value").cast(pl.String) == OTHER).any().alias("rare")
        )
        part = (
            same.join(chance, on="event", how="left")
            .join(values, on="event", how="left")
            .join(by_own, on="event", how="left")
            .with_columns(pl.col("c").fill_null(0.0))
        )
        # One value (not the rare values' ``other``): nothing to carry, even where a few rows before differ.
        one_value = (pl.col("c") >= 1 - 1e-9) | ((pl.col("values") == 1) & ~pl.col("rare"))
        carry = pl.when(~one_value).then(
            ((pl.col("same_share") - pl.col("c")) / (1 - pl.col("c"))).clip(0.0, 1.0)
        )
        avoid = pl.when(pl.col("same_share") < pl.col("c")).then(
            (1 - pl.col("same_share") / pl.col("c")).clip(0.0, 1.0)
        )
        room = pl.col("can") - pl.col("by_own")  # the rows before whose event may take the value, less o
        back = pl.when(one_value & (pl.col("values") == 1) & ~pl.col("rare") & (room > 1e-9)).then(
            ((pl.col("same_share") - pl.col("by_own")) / room).clip(0.0, 1.0)
        )
        parts.append(
            part.select(
                "event",
                pl.lit(key).alias("key"),
                pl.col("same_share").round(6),
                carry.fill_null(0.0).round(6).alias("carry_share"),
                avoid.fill_null(0.0).round(6).alias("avoid_share"),
                back.fill_null(0.0).round(6).alias("back_share"),
            )
        )  # fmt: skip
    return _concat(parts, schema).sort("event", "key")  # type: ignore[arg-type]


def _entry_mixes(in_sessions: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (event, key, value, entry_share) and (event, key, entry_rows): the mix of a key on the first row
    of each session that carries it, where that differs from the mix on the session's later rows.

    A visit opens from outside and goes on inside: 98 % of a streaming site's sessions open on a page view
    whose referring domain is ``$direct``, and almost every later page view's is the site's own. Drawn from
    the event's whole mix, the first page view came from inside the site as often as any other. Per (event,
    key), the first rows' shares p1 (N1 rows) and the later rows' p2 (N2 rows) are kept apart when their total
    variation is ``ENTRY_TV`` or more and three times what two samples of one mix would give (half the sum
    over values of sqrt(p (1 - p) (1/N1 + 1/N2)), p pooled), with ``ENTRY_MIN_ROWS`` rows on each side.
    ``entry_rows`` is N1 / (N1 + N2): the twin draws the first rows from ``entry_share`` and the others from
    the later mix, (share - entry_rows * entry_share) / (1 - entry_rows), so the event's whole mix holds.
    The values are the event's own (rare ones already ``other``): no value is kept that the mix lacks.
    """
    c_schema = {"event": pl.String, "key": pl.String, "value": pl.String, "entry_share": pl.Float64}
    k_schema = {"event": pl.String, "key": pl.String, "entry_rows": pl.Float64}
    c_parts, k_parts = [], []
    for key, rows in sorted(in_sessions.items()):
        first = (pl.col("session") != pl.col("session").shift(1)).fill_null(True)
        counts = (
            rows.sort("row")
            .with_columns(first.alias("first"))
            .group_by("event", "value")
            .agg(pl.col("first").sum().alias("n1"), (~pl.col("first")).sum().alias("n2"))
            .with_columns(
                pl.col("n1").sum().over("event").alias("N1"), pl.col("n2").sum().over("event").alias("N2")
            )
            .filter((pl.col("N1") >= ENTRY_MIN_ROWS) & (pl.col("N2") >= ENTRY_MIN_ROWS))
        )
        if counts.is_empty():
            continue
        p1, p2 = pl.col("n1") / pl.col("N1"), pl.col("n2") / pl.col("N2")
        pooled = (pl.col("n1") + pl.col("n2")) / (pl.col("N1") + pl.col("N2"))
        noise = (pooled * (1 - pooled) * (1 / pl.col("N1") + 1 / pl.col("N2"))).sqrt()
        apart = (
            counts.group_by("event")
            .agg(
                ((p1 - p2).abs().sum() / 2).alias("tv"),
                (noise.sum() / 2).alias("noise"),
                pl.col("N1").first(),
                pl.col("N2").first(),
            )  # fmt: skip
            .filter((pl.col("tv") >= ENTRY_TV) & (pl.col("tv") >= 3 * pl.col("noise")))
        )
        if apart.is_empty():
            continue
        kept = counts.join(apart.select("event"), on="event", how="semi")
        c_parts.append(
            kept.select("event", pl.lit(key).alias("key"), "value", p1.round(6).alias("entry_share"))
        )
        k_parts.append(
            apart.select(
                "event",
                pl.lit(key).alias("key"),
                (pl.col("N1") / (pl.col("N1") + pl.col("N2"))).round(6).alias("entry_rows"),
            )  # fmt: skip
        )
    return _concat(c_parts, c_schema), _concat(k_parts, k_schema)  # type: ignore[arg-type]


def _next_mixes(
    in_sessions: dict[str, pl.DataFrame],
    following: pl.DataFrame,
    entry_rows: pl.DataFrame,
    k: int,
    holders: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Return (event, key, next, next_rows, value, share): the mix of a key on an event's rows followed by event
    ``next`` in their session, where that differs from the mix on the event's other rows.

    A shop's product is viewed on its own page: the page view before a ``product_viewed`` is a product's page,
    while page views in all are the home page or a category's half the time. Drawn from the page views' whole
    mix, the page before a product's view (and with it the product, its page carried on to the view and to the
    cart) was another page 40 % of the time. Per (event, key) and each event that follows its rows, the mix p1
    on those rows (N1) and p2 on the event's other rows (N2) are kept apart by the rules of
    :func:`_entry_mixes` (total variation ``ENTRY_TV`` or more and three times the two samples' noise,
    ``ENTRY_MIN_ROWS`` rows a side). Where the session's first rows have a mix of their own, only the later
    rows count (the twin draws first rows from theirs). A value counts in a mix only where k users (of k
    groups, with ``holders``) had it on such rows, so no mix tells of fewer; the values are the event's own
    (rare ones already ``other``). ``next_rows`` is N1 / (N1 + N2): the twin draws the rows followed by
    ``next`` from ``share`` and the event's other rows from what is left, so the event's whole mix holds.
    ``following``: (row, user, next) for every row of the sample, ``next`` null after a session's last row.
    """
    parts = []
    opening = entry_rows.select("event", "key", pl.lit(True).alias("__entry"))
    for key, rows in sorted(in_sessions.items()):
        first = (pl.col("session") != pl.col("session").shift(1)).fill_null(True)
        later = (
            rows.sort("row")
            .with_columns(first.alias("first"), pl.lit(key).alias("key"))
            .join(opening, on=["event", "key"], how="left")
            .filter(~(pl.col("first") & pl.col("__entry").fill_null(False)))
            .join(following, on="row", how="left")
            .select("user", "event", "next", "value")
        )
        totals = later.group_by("event", "value").agg(pl.len().alias("n"))
        events = totals.group_by("event").agg(pl.col("n").sum().alias("N"))
        cells = later.drop_nulls("next").group_by("event", "next").agg(pl.len().alias("N1"))
        cells = cells.join(events, on="event").with_columns((pl.col("N") - pl.col("N1")).alias("N2"))
        cells = cells.filter((pl.col("N1") >= ENTRY_MIN_ROWS) & (pl.col("N2") >= ENTRY_MIN_ROWS))
        if cells.is_empty():
            continue
        on_cells = later.join(cells.select("event", "next"), on=["event", "next"], how="semi")
        grid = cells.select("event", "next", "N1", "N2").join(totals, on="event")  # every value, per cell
        counts = grid.join(
            on_cells.group_by("event", "next", "value").agg(pl.len().alias("n1")),
            on=["event", "next", "value"], how="left",
        ).with_columns(pl.col("n1").fill_null(0))  # fmt: skip
        p1 = pl.col("n1") / pl.col("N1")
        p2 = (pl.col("n") - pl.col("n1")) / pl.col("N2")
        pooled = pl.col("n") / (pl.col("N1") + pl.col("N2"))
        noise = (pooled * (1 - pooled) * (1 / pl.col("N1") + 1 / pl.col("N2"))).sqrt()
        apart = (
            counts.group_by("event", "next")
            .agg(((p1 - p2).abs().sum() / 2).alias("tv"), (noise.sum() / 2).alias("noise"))
            .filter((pl.col("tv") >= ENTRY_TV) & (pl.col("tv") >= 3 * pl.col("noise")))
        )
        if apart.is_empty():
            continue
        # k users (groups) per value and cell: a rarer value's rows leave the cell's mix.
        held = _holders_per_cell(on_cells.join(apart, on=["event", "next"], how="semi"), holders)
        kept = (
            counts.join(apart.select("event", "next"), on=["event", "next"], how="semi")
            .join(
                held.filter(pl.col("u") >= k).select("event", "next", "value"),
                on=["event", "next", "value"],
                how="semi",
            )  # fmt: skip
            .with_columns((pl.col("n1") / pl.col("n1").sum().over("event", "next")).alias("share"))
        )
        parts.append(
            kept.select(
                "event",
                pl.lit(key).alias("key"),
                "next",
                (pl.col("N1") / (pl.col("N1") + pl.col("N2"))).round(6).alias("next_rows"),
                "value",
                pl.col("share").round(6),
            )  # fmt: skip
        )
    return _concat(parts, NEXT_SCHEMA).sort("event", "key", "next", "value")  # type: ignore[arg-type]


def _numbers_given(
    numbers: dict[str, pl.DataFrame], categories: dict[str, pl.DataFrame], levels: int, k: int
) -> pl.DataFrame:
    """Return (event, key, by, by_value, level, value): per event and number key, the quantile sketches of the
    number per value of the category of its row (``by``) that explains it best, where that is ``BY_SHARE`` of
    its spread or more.

    A purchase's revenue is in its currency: yen amounts a hundred times the dollar ones. Drawn from the
    event's one sketch, the twin's yen purchases cost 32 and its dollar ones 748. The spread is that of
    sign(x) log(1 + |x|) (a price's scale, not its last cents), the share explained that of the categories'
    means (eta squared), over the rows the category covers (90 % of the number's rows or more). A value of
    the category gets its own sketch where k users had it (winsorized as every sketch is, at the k-th
    users' extremes); its other rows keep the event's sketch. ``numbers``: each per-event number's (row,
    user, event, value); ``categories``: each category's (row, value), rare values already ``other``.
    """
    parts = []
    if not numbers or not categories:
        return pl.DataFrame(schema=BY_SCHEMA)  # type: ignore[arg-type]
    size = 1 + max(
        int(rows["row"].max() or 0) for rows in [*numbers.values(), *categories.values()] if rows.height
    )
    # Each category's rows and value codes, once (NumPy: one bincount per (number, category) pair).
    coded = {}
    for by, cats in sorted(categories.items()):
        values = cats["value"].cast(pl.String)
        codes = (
            values.cast(pl.Enum(values.unique().sort().to_list())).to_physical().to_numpy().astype(np.int64)
        )
        coded[by] = (cats["row"].to_numpy().astype(np.int64), codes, int(codes.max(initial=-1)) + 1)
    for key, rows in sorted(numbers.items()):
        names = rows["event"].unique().sort()
        e_code = rows["event"].cast(pl.Enum(names.to_list())).to_physical().to_numpy().astype(np.int64)
        x = rows["value"].to_numpy().astype(np.float64)
        y_row = np.full(size, np.nan)
        e_row = np.full(size, -1, np.int64)
        y_row[rows["row"].to_numpy()] = np.sign(x) * np.log1p(np.abs(x))
        e_row[rows["row"].to_numpy()] = e_code
        n_ev = names.len()
        y = y_row[rows["row"].to_numpy()]
        n = np.bincount(e_code, minlength=n_ev).astype(np.float64)
        s1 = np.bincount(e_code, y, minlength=n_ev)
        ss = np.bincount(e_code, y * y, minlength=n_ev) - s1 * s1 / np.maximum(n, 1)
        best: dict[str, tuple[float, str]] = {}
        for by, (c_rows, c_codes, levels_c) in coded.items():
            on = np.flatnonzero(~np.isnan(y_row[c_rows]))
            if not on.size or not levels_c:
                continue
            r = c_rows[on]
            cell = e_row[r] * levels_c + c_codes[on]
            yy = y_row[r]
            cnt = np.bincount(cell, minlength=n_ev * levels_c).astype(np.float64)
            c1 = np.bincount(cell, yy, minlength=n_ev * levels_c)
            c2 = np.bincount(cell, yy * yy, minlength=n_ev * levels_c)
            within = (c2 - c1 * c1 / np.maximum(cnt, 1)).reshape(n_ev, levels_c).sum(axis=1)
            covered = cnt.reshape(n_ev, levels_c).sum(axis=1)
            eta2 = np.where((covered >= 0.9 * n) & (ss > 1e-12), 1 - within / np.maximum(ss, 1e-12), 0.0)
            for e in np.flatnonzero(eta2 >= BY_SHARE):
                event = str(names[int(e)])
                if eta2[e] > best.get(event, (0.0, ""))[0] + 1e-9:
                    best[event] = (float(eta2[e]), by)
        for event, (_, by) in sorted(best.items()):
            cell = rows.filter(pl.col("event") == event).join(
                categories[by].select("row", pl.col("value").alias("by_value")), on="row", how="inner"
            )
            cell = cell.filter(pl.col("user").n_unique().over("by_value") >= k)  # k users a value
            long = cell.select("user", pl.col("by_value").alias("event"), pl.lit(key).alias("key"), "value")
            sketches = _number_sketches(long, levels, k)
            parts.append(
                sketches.select(
                    pl.lit(event).alias("event"),
                    "key",
                    pl.lit(by).alias("by"),
                    pl.col("event").alias("by_value"),
                    "level",
                    "value",
                )  # fmt: skip
            )
    return _concat(parts, BY_SCHEMA).sort("event", "key", "by_value", "level")  # type: ignore[arg-type]


def _carry_given(
    in_sessions: dict[str, pl.DataFrame],
    categories: dict[str, pl.DataFrame],
    numbers_by: pl.DataFrame,
    kinds: dict[str, str],
    flat: float,
) -> pl.DataFrame:
    """Return (event, key, carry_share, avoid_share) of the numbers drawn given a category of their row
    (``numbers_by``), their carry fitted against the chance a draw given the row's category repeats the value
    before.

    :func:`_carried_shares` counts the chance c that a fresh draw equals the previous value over the event's
    whole mix; drawn from the sketch of the row's category, a number repeats more often (two rows of a currency
    share its prices), so a carry fitted against the whole mix's c repeated it too often: a purchase's revenue
    carried on 0.86 of the time in the twin, 0.69 in the export. Here c is the mean over the event's rows (with
    a previous value in their session) of the share the previous value has among the rows of the row's category
    value (the event's rows where that value has no sketch), counting for numbers that are not whole only the
    values that hold a flat step (a share ``flat`` or more), and r = (M - c) / (1 - c), s = 1 - M / c as there.
    ``in_sessions``: each number's (row, session, event, value); ``categories``: each category's (row, value).
    """
    schema = {"event": pl.String, "key": pl.String, "carry_share": pl.Float64, "avoid_share": pl.Float64}
    parts = []
    for (key, by), cells in numbers_by.group_by("key", "by", maintain_order=True):
        key, by = str(key), str(by)
        if key not in in_sessions or by not in categories:
            continue
        floor = 0.0 if kinds.get(key) == "integer" else flat
        events = cells.select("event").unique()
        sketched = cells.select("event", "by_value").unique().with_columns(pl.lit(True).alias("own"))
        in_session = pl.col("session") == pl.col("session").shift(1)
        rows = (
            in_sessions[key]
            .sort("row")
            .with_columns(pl.when(in_session).then(pl.col("value").shift(1)).alias("prev"))
            .join(events, on="event", how="semi")
            .join(
                categories[by].select("row", pl.col("value").cast(pl.String).alias("by_value")),
                on="row",
                how="left",
            )
            .join(sketched, on=["event", "by_value"], how="left")
            .with_columns(
                pl.when(pl.col("own")).then(pl.col("by_value")).alias("cell")
            )  # null: the event's mix
        )
        if rows.is_empty():
            continue
        shares = []
        for cell in (["event", "cell"], ["event"]):
            shares.append(
                rows.group_by(*cell, "value")
                .agg(pl.len().alias("n"))
                .with_columns((pl.col("n") / pl.col("n").sum().over(cell)).alias("p"))
                .filter(pl.col("p") >= floor)
                .select(*cell, pl.col("value").alias("prev"), "p")
            )
        pairs = rows.drop_nulls("prev")
        mixed = pairs.join(shares[0].drop_nulls("cell"), on=["event", "cell", "prev"], how="left").join(
            shares[1].rename({"p": "p_event"}), on=["event", "prev"], how="left"
        )
        chance = (
            pl.when(pl.col("cell").is_not_null())
            .then(pl.col("p"))
            .otherwise(pl.col("p_event"))
            .fill_null(0.0)
        )
        part = mixed.group_by("event").agg(
            (pl.col("value") == pl.col("prev")).mean().alias("m"), chance.mean().alias("c")
        )
        carry = pl.when(pl.col("c") < 1 - 1e-9).then(
            ((pl.col("m") - pl.col("c")) / (1 - pl.col("c"))).clip(0.0, 1.0)
        )
        avoid = pl.when(pl.col("m") < pl.col("c")).then((1 - pl.col("m") / pl.col("c")).clip(0.0, 1.0))
        parts.append(
            part.select(
                "event",
                pl.lit(key).alias("key"),
                carry.fill_null(0.0).round(6).alias("carry_share"),
                avoid.fill_null(0.0).round(6).alias("avoid_share"),
            )
        )
    return _concat(parts, schema).unique(["event", "key"], keep="first").sort("event", "key")  # type: ignore[arg-type]


def _holders_per_cell(rows: pl.DataFrame, holders: pl.DataFrame | None) -> pl.DataFrame:
    """Return (event, next, value, u) of ``rows`` (user, event, next, value): u the distinct users of each
    cell, or with ``holders`` the fewest distinct groups of any type among them (as :func:`_holders_per_value`)."""
    pairs = rows.select("user", "event", "next", "value").unique()
    cell = ["event", "next", "value"]
    if holders is None:
        return pairs.group_by(cell).agg(pl.len().alias("u"))
    groups = [c for c in holders.columns if c != "user"]
    return (
        pairs.join(holders, on="user", how="left")
        .group_by(cell)
        .agg(pl.len().alias("users"), *[pl.col(c).n_unique() for c in groups])
        .select(*cell, pl.min_horizontal("users", *groups).alias("u"))
    )


def _copied_from(
    in_sessions: dict[str, pl.DataFrame], event_keys: pl.DataFrame, looked_up: set[str]
) -> pl.DataFrame:
    """Return (event, key, source, lag, same_share, copy_share): an event's value of a key given by another key's.

    A page-leave names the page it leaves as its previous page (``$prev_pageview_pathname`` = its own
    ``$pathname``: lag 0, the same row); a page view's referrer is the URL of the row before it (``$referrer``
    = the previous ``$current_url`` of the session: lag 1). Per (event, key) and each other per-event key
    sharing values with it, M is the share of the event's rows (with the source present) equal to the
    source, c the share a fresh draw would match (as in :func:`_carried_shares`) and r = (M - c) / (1 - c).
    The source with the largest r is kept when M is at least 0.5, r at least 0.5 and above the key's own
    carry share by 0.05, over 30 rows or more. Keys drawn through a lookup (``looked_up``) copy nothing.
    """
    schema = {"event": pl.String, "key": pl.String, "source": pl.String, "lag": pl.Int8,
              "same_share": pl.Float64, "copy_share": pl.Float64}  # fmt: skip
    keys = sorted(in_sessions)
    if len(keys) < 2:
        return pl.DataFrame(schema=schema)
    values = {key: set(in_sessions[key]["value"].unique().to_list()) - {OTHER} for key in keys}
    pairs = [
        (a, b)
        for a in keys
        for b in keys
        if a != b and a not in looked_up and len(values[a] & values[b]) >= 2
    ]
    if not pairs:
        return pl.DataFrame(schema=schema)
    used = sorted({key for pair in pairs for key in pair})
    wide = (
        pl.concat([in_sessions[key].select("row", "session", "event") for key in used])
        .unique("row")
        .sort("row")
    )
    for key in used:
        wide = wide.join(in_sessions[key].select("row", pl.col("value").alias(key)), on="row", how="left")
    wide = wide.with_columns(
        pl.col(key).shift(1).forward_fill().over("session").alias(f"{key}\x00prev") for key in used
    )
    own = event_keys.select("event", "key", pl.col("carry_share").alias("own"))
    parts = []
    for a, b in pairs:
        for lag, source in ((0, b), (1, f"{b}\x00prev")):
            rows = wide.select("event", pl.col(a).alias("v"), pl.col(source).alias("s")).drop_nulls(
                ["v", "s"]
            )
            if rows.height < 30:
                continue
            same = rows.group_by("event").agg(
                (pl.col("v") == pl.col("s")).mean().alias("same_share"), pl.len()
            )
            p = rows.group_by("event", "v").agg(pl.len().alias("n")).with_columns(
                (pl.col("n") / pl.col("n").sum().over("event")).alias("p"))  # fmt: skip
            q = rows.group_by("event", pl.col("s").alias("v")).agg(pl.len().alias("m")).with_columns(
                (pl.col("m") / pl.col("m").sum().over("event")).alias("q"))  # fmt: skip
            c = (
                p.join(q, on=["event", "v"])
                .group_by("event")
                .agg((pl.col("p") * pl.col("q")).sum().alias("c"))
            )
            part = same.join(c, on="event", how="left").with_columns(pl.col("c").fill_null(0.0))
            r = pl.when(pl.col("c") < 1 - 1e-9).then(
                ((pl.col("same_share") - pl.col("c")) / (1 - pl.col("c"))).clip(0, 1)
            )
            parts.append(
                part.filter(pl.col("len") >= 30).select(
                    "event", pl.lit(a).alias("key"), pl.lit(b).alias("source"), pl.lit(lag, pl.Int8).alias("lag"),
                    "same_share", r.fill_null(0.0).alias("copy_share"),
                )
            )  # fmt: skip
    if not parts:
        return pl.DataFrame(schema=schema)
    found = (
        pl.concat(parts)
        .join(own, on=["event", "key"], how="left")
        .filter(
            (pl.col("same_share") >= 0.5)
            & (pl.col("copy_share") >= 0.5)
            & (pl.col("copy_share") > pl.col("own").fill_null(0.0) + 0.05)
        )
        .sort(["event", "key", "copy_share", "lag", "source"], descending=[False, False, True, False, False])
        .unique(["event", "key"], keep="first", maintain_order=True)
    )
    # Two keys equal on the same row would each copy the other: the first by name copies, the other is drawn.
    mutual = found.filter(pl.col("lag") == 0).join(
        found.filter(pl.col("lag") == 0).select(
            "event", pl.col("key").alias("source"), pl.col("source").alias("key")
        ),
        on=["event", "key", "source"],
        how="semi",
    )
    found = found.join(mutual.filter(pl.col("key") > pl.col("source")), on=["event", "key"], how="anti")
    return found.select(pl.col(c).cast(t) for c, t in schema.items()).with_columns(
        pl.col("same_share", "copy_share").round(6)
    )


def _lookups(
    per_event: dict[str, pl.DataFrame],
    numbers: dict[str, pl.DataFrame] | None = None,
    k: int = 1,
    holders: pl.DataFrame | None = None,
) -> tuple[dict[str, str], pl.DataFrame, pl.DataFrame]:
    """Return (key -> the key it follows, the lookup table: key, parent, parent_value, value, and (event, key,
    follow_share): the share of the event's looked-up rows in the fit's sample whose value is the lookup's).

    ``per_event``: each per-event category's (row, user, event, value, raw), rare values ``other`` in ``value``
    and as read in ``raw``; ``numbers``: each per-event number's (row, user, event, value). Keys that travel
    together (a video's id, title, genre and duration) are one thing: drawn on their own, the twin wrote one
    video's id beside another's title and a third's duration. A key (a category, or a number) follows the
    first category, among those with as many values as read or more (ties: the name first), that is present
    on 99 % of its rows and whose kept values (not ``other``, on half of its rows or more) give its value as
    read on 99 % of those rows: each kept parent value maps to the key's commonest value beside it, where k
    users (of k groups, with ``holders``) had the pair (the pair is then as common as the parent's value, so
    a title or a duration the category cap or a rare reading made ``other`` comes back with its video). The
    values are compared as read, not as kept: two keys cut at the same cap by their own counts keep a few
    different values at its edge (three of a HogFlix sample's titles of kept videos were ``other``, and their
    1 % of rows broke the rule). A key that others follow follows none (lookups are one step); a key of one
    value has nothing to look up.
    """
    numbers = numbers or {}
    lk_schema = {"key": pl.String, "parent": pl.String, "parent_value": pl.String, "value": pl.String}
    fs_schema = {"event": pl.String, "key": pl.String, "follow_share": pl.Float64}
    raw = {key: ("raw" if "raw" in frame.columns else "value") for key, frame in per_event.items()}
    distinct = {key: int(frame[raw[key]].n_unique()) for key, frame in per_event.items()}
    distinct |= {key: int(frame["value"].n_unique()) for key, frame in numbers.items()}
    ranked = sorted(per_event, key=lambda key: (-distinct[key], key))
    children = sorted({*per_event, *numbers}, key=lambda key: (distinct[key], key))
    follows: dict[str, str] = {}
    tables, shares = [], []
    for child in children:  # the fewest values first: they have the most candidate parents
        if child in follows.values() or distinct[child] < 2:
            continue
        number = child in numbers
        rows = numbers[child] if number else per_event[child]
        text = pl.col("value").cast(pl.String) if number else pl.col(raw[child]).cast(pl.String)
        rows = rows.select("row", "user", "event", text.alias("c"))
        for parent in ranked:
            if parent == child or parent in follows or distinct[parent] < distinct[child]:
                continue
            if not number and distinct[parent] == distinct[child] and parent > child:
                continue
            both = rows.join(
                per_event[parent].select("row", pl.col("value").alias("p")), on="row", how="left"
            )
            if both["p"].null_count() > (1 - FOLLOWS_SHARE) * both.height:
                continue
            kept = both.filter(pl.col("p").is_not_null() & (pl.col("p") != OTHER))
            if kept.height < max(0.5 * both.height, ENTRY_MIN_ROWS):
                continue
            top = (
                kept.group_by("p", "c")
                .agg(pl.len().alias("n"))
                .sort(["p", "n", "c"], descending=[False, True, False])
                .unique("p", keep="first", maintain_order=True)
            )
            if int(top["n"].sum()) < FOLLOWS_SHARE * kept.height:
                continue
            pairs = kept.join(top.select("p", "c"), on=["p", "c"], how="semi")
            held = _holders_per_value(
                pairs.select("user", pl.concat_str("p", pl.lit("\x00"), "c").alias("value")).unique(), holders
            ).filter(pl.col("u") >= k)
            top = top.filter(pl.concat_str("p", pl.lit("\x00"), "c").is_in(held["value"].implode()))
            if top.is_empty():
                continue
            follows[child] = parent
            tables.append(top.select(pl.lit(child).alias("key"), pl.lit(parent).alias("parent"),
                                     pl.col("p").alias("parent_value"), pl.col("c").alias("value")))  # fmt: skip
            looked = kept.join(top.select("p", pl.col("c").alias("want")), on="p", how="inner")
            shares.append(
                looked.group_by("event").agg(
                    pl.lit(child).alias("key"), (pl.col("c") == pl.col("want")).mean().round(6).alias("follow_share")
                )
            )  # fmt: skip
            break
    lookups = _concat(tables, lk_schema).sort("key", "parent_value")  # type: ignore[arg-type]
    follow_shares = _concat(shares, fs_schema).sort("event", "key")  # type: ignore[arg-type]
    return dict(sorted(follows.items())), lookups, follow_shares


def _unlooked_mixes(
    categories: pl.DataFrame,
    per_event: dict[str, pl.DataFrame],
    follows: dict[str, str],
    lookups: pl.DataFrame,
) -> pl.DataFrame:
    """Return ``categories`` (event, key, value, share) with each following category's mix per event taken
    over the rows its lookup does not give (the key it follows absent or ``other`` there): the only rows the
    twin draws it for. Drawn from the whole mix, a video of a rare id (``other``) took a kept video's title.
    An event whose every row is looked up keeps its whole mix."""
    for key, parent in follows.items():
        if key not in per_event:
            continue
        given = lookups.filter((pl.col("key") == key) & (pl.col("parent") == parent))["parent_value"]
        rows = per_event[key].join(
            per_event[parent].select("row", pl.col("value").alias("p")), on="row", how="left"
        )
        rest = rows.filter(pl.col("p").is_null() | ~pl.col("p").is_in(given.implode()))
        if rest.is_empty():
            continue
        mix = (
            rest.group_by("event", "value")
            .agg(pl.len().alias("n"))
            .select("event", pl.lit(key).alias("key"), pl.col("value").cast(pl.String),
                    (pl.col("n") / pl.col("n").sum().over("event")).alias("share"))
        )  # fmt: skip
        mine = pl.col("key") == key
        events = mix["event"].unique().implode()
        categories = pl.concat(
            [categories.filter(~(mine & pl.col("event").is_in(events))), mix.select(categories.columns)]
        )
    return categories


def _number_sketches(num_long: pl.DataFrame, levels: int, k: int) -> pl.DataFrame:
    """Return the quantile sketch of every numeric (event, key), winsorized at the k-th extremes.

    ``num_long``: (user, event, key, value). The values are first clipped to the k-th smallest of the
    users' own smallest values and the k-th largest of their largest: the sketch's ends are then values k
    users reached, not one user's k purchases of the same amount.
    """
    empty = pl.DataFrame(
        schema={"event": pl.String, "key": pl.String, "level": pl.Int16, "value": pl.Float64}
    )
    if num_long.is_empty():
        return empty
    bounds = (
        num_long.group_by("event", "key", "user")
        .agg(pl.col("value").min().alias("lo"), pl.col("value").max().alias("hi"))
        .group_by("event", "key")
        .agg(pl.col("lo").bottom_k(k).max(), pl.col("hi").top_k(k).min())
    )
    num_long = num_long.join(bounds, on=["event", "key"], how="left", maintain_order="left").select(
        "event", "key", pl.col("value").clip(pl.col("lo"), pl.col("hi"))
    )
    groups = num_long.select("event", "key").unique().sort("event", "key").with_row_index("g")
    rows = num_long.join(groups, on=["event", "key"], how="left", maintain_order="left")
    names, q = grouped_sketches(rows["g"].to_numpy(), rows["value"].cast(pl.Float64).to_numpy(), levels, k)
    if names.size == 0:
        return empty
    table = groups.filter(pl.col("g").is_in(names)).sort("g").with_columns(pl.Series("q", q.tolist()))
    return (
        table.with_columns(pl.int_ranges(0, levels).alias("level"))
        .explode("q", "level")
        .select("event", "key", pl.col("level").cast(pl.Int16), pl.col("q").alias("value"))
    )
