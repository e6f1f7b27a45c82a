"""Nothing of a real person reaches the spec (personal data inside values, rare values, names of rare events and
keys), and what is kept keeps its structure (a user's OS and OS version stay a pair).

Each test builds a small sample with the data planted in it and looks for every planted value in
everything the fit writes down (the tables and the dropped lists).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.twin.config import FitConfig
from simulation_assets.core.twin.example import synthetic_events
from simulation_assets.core.twin.flows import vocabulary
from simulation_assets.core.twin.properties import (
    OTHER,
    PropertyModel,
    candidate_keys,
    fit_properties,
    group_holders,
    listed_drops,
)
from simulation_assets.sinks.posthog_export import open_export, write_export
from simulation_assets.sinks.twin_source import group_keys, load_for_fit

K = 5


def _written(model: PropertyModel) -> str:
    """Every text the property model would write into a spec."""
    parts = [str(model.dropped), str(model.kinds), str(model.constants), str(model.follows)]
    for table in (model.combos, model.marginals, model.event_keys, model.categories, model.lookups,
                  model.session_combos, model.session_marginals):  # fmt: skip
        parts += [str(v) for c in table.columns for v in table[c].unique().to_list()]
    return "\n".join(parts)


def _sample(users: int = 60, rows_per_user: int = 4) -> pl.DataFrame:
    u = np.repeat(np.arange(users), rows_per_user)
    team = u // 10  # teams of ten: a team page carries its admin's address for all ten
    return pl.DataFrame(
        {
            "user": u,
            "event": "$pageview",
            "$current_url": [
                [
                    f"https://app.example/u/jane.doe{x}@corp.example/settings",
                    f"https://app.example/users/{480_000 + x}/invoices",
                    f"https://app.example/team/admin{t}@corp{t}.example/members",
                    f"https://app.example/share/a8F3kQ9x2LmZ7{x:07d}",
                ][x % 4 if i % 2 else 3 - x % 4]
                for i, (x, t) in enumerate(zip(u, team))
            ],
            # The same support line for every user of a team: k users, still a phone number.
            "query": [f"call +1 555 010 {t:04d}" if i % 3 == 0 else "pricing" for i, t in enumerate(team)],
            "contact": [f"owner{t}@corp{t}.example" for t in team],
            "ip_seen": [f"10.0.{t}.1" for t in team],
            "$referrer": "https://bob:s3cret@dash.example/board",  # a shared dashboard's password, every user
            "deeplink": [
                f"myapp://reset-password/{x % 2}?token=tok{t}zz" for x, t in zip(u, team)
            ],  # an app's URL
            "note": [f"(555) 010-{t:04d}" if i % 3 == 0 else "ok" for i, t in enumerate(team)],
            "card": [f"4111 1111 1111 {t:04d}" if i % 3 == 0 else "none" for i, t in enumerate(team)],
            # Ids of things, not people, seen for k users: kept (digit runs inside a UUID are not a card number).
            "video_id": [f"019c2017-9968-7707-8934-3ab855e05d{t:02d}" for t in team],
            "ip6": [
                f"2001:0db8:0000:0000:0000:ff00:0042:{t:04x}" if i % 3 == 0 else "-"
                for i, t in enumerate(team)
            ],
        }
    )


def test_personal_data_inside_values_never_reaches_the_spec_even_when_k_users_share_it() -> None:
    sample = _sample()
    keys = [
        "$current_url",
        "query",
        "contact",
        "ip_seen",
        "$referrer",
        "deeplink",
        "note",
        "card",
        "ip6",
        "video_id",
    ]
    model = fit_properties(sample, keys, K, 11, 50, dropped=[])
    text = _written(model)
    assert "tok" not in text and "010-" not in text and "4111" not in text and "2001:" not in text
    assert "myapp://reset-password/1" in text and "019c2017-9968-7707-8934-3ab855e05d05" in text
    assert "@" not in text and "555" not in text and "10.0." not in text and "a8F3kQ9" not in text
    assert "s3cret" not in text and "https://dash.example/board" in text
    assert "480" not in text
    # The pages stay as pages: ids, tokens and addresses in a path become placeholders, shared by everyone.
    urls = set(model.categories.filter(pl.col("key") == "$current_url")["value"]) | set(
        model.marginals.filter(pl.col("key") == "$current_url")["value"]
    )
    assert {"https://app.example/users/:id/invoices", "https://app.example/u/:email/settings",
            "https://app.example/team/:email/members", "https://app.example/share/:id"} <= urls  # fmt: skip
    assert model.url_segments == 2 * sample.height  # every page, and every referrer (its password)
    assert model.personal_values > 0
    assert "pricing" in text  # plain values are kept


def test_rare_values_count_users_not_rows() -> None:
    # One user with 400 rows of a value, four users with 100 rows each of another, five users with 2 each.
    users = np.r_[np.zeros(400, int), np.repeat(np.arange(1, 5), 100), np.repeat(np.arange(5, 10), 2),
                  np.repeat(np.arange(10, 60), 40)]  # fmt: skip
    tier = ["t-one"] * 400 + ["t-four"] * 400 + ["t-five"] * 10 + ["standard"] * 2000
    sample = pl.DataFrame(
        {"user": users, "event": "$pageview", "tier": tier, "step": np.arange(users.size) % 2}
    )
    sample = sample.with_columns(pl.col("step").cast(pl.String))
    model = fit_properties(sample, ["tier", "step"], K, 11, 50, dropped=[])
    text = _written(model)
    assert "t-one" not in text and "t-four" not in text  # k - 1 users, however many rows
    assert "t-five" in text  # exactly k users
    assert OTHER in text


def test_names_of_keys_seen_by_few_users_or_holding_personal_data_are_not_listed() -> None:
    stats = pl.DataFrame(
        {
            "event": "$pageview",
            "key": ["$ip", "jane_doe_flag", "$feature/beta-for-jane@corp.example", "nested", "$set"],
            "rows": [900, 40, 40, 500, 30],
            "event_rows": 1000,
            "share": 0.5,
            "types": ["VARCHAR", "VARCHAR", "BOOLEAN", "OBJECT", "OBJECT"],
            "users": [300, 1, 12, 200, 2],
        }
    )
    flattened = pl.DataFrame(
        {"event": "$pageview", "key": ["$set.name", "$set_once.$initial_referrer", "$group_key", "plan",
                                       "$feature/beta-for-ann@corp.example"],
         "rows": 100, "event_rows": 1000, "share": 0.1, "types": "VARCHAR", "users": 50}
    )  # fmt: skip
    # A person's or group's properties flattened, a key named after a person (50 users carry it): not modelled.
    keep, dropped = candidate_keys(flattened, limit=10)
    assert keep == ["plan"] and "ann@" not in str(listed_drops(dropped, K))
    keep, dropped = candidate_keys(stats, limit=0)  # every key dropped: too many, personal or nested
    assert keep == []
    named, hidden = listed_drops(dropped, K)
    assert {d["key"] for d in named} == {"$ip", "nested", "$set"}  # PostHog's own names, or k users
    assert hidden == 2
    # In the fit: a key of one user is dropped (its values are all rare) and counted, never named.
    sample = _sample().with_columns(
        pl.when(pl.col("user") == 0).then(pl.lit("yes")).otherwise(None).alias("jane_doe_flag")
    )
    model = fit_properties(sample, ["query", "jane_doe_flag"], K, 11, 50, dropped=[])
    assert "jane_doe" not in _written(model) and model.rare_keys == 1


def test_rare_event_names_and_names_holding_personal_data_are_dropped_and_not_listed() -> None:
    rows = []
    for u in range(40):
        rows += [(u, "$pageview")] * 3 + [(u, "search")]
        if u < 4:
            rows += [(u, "secret_beta")] * 50  # four users (k - 1), many rows
        if u < 5:
            rows.append((u, "team_export"))  # exactly k users
        if u < 10:
            rows.append((u, "Exported data for admin@corp.example"))  # ten users, but an address
        if u == 7:
            rows.append((u, "deleted_account_7"))
    events = pl.DataFrame(rows, schema=["user", "event"], orient="row")
    kept, listed, hidden = vocabulary(events, K, limit=2, exclude=())
    assert kept == ["$pageview", "search"]
    assert listed == ["team_export"]  # beyond the limit, but k users: its name may be written down
    assert hidden == 3
    kept, listed, hidden = vocabulary(events, K, limit=10, exclude=())
    assert set(kept) == {"$pageview", "search", "team_export"} and listed == [] and hidden == 3


def test_the_export_s_key_statistics_count_persons(tmp_path: Path) -> None:
    # Ten persons, each with an anonymous and an identified id; the key "beta" on two persons' events.
    ids = [(f"anon-{p}", f"user-{p}", p) for p in range(10)]
    rows = []
    for anon, known, p in ids:
        for i, did in enumerate((anon, known, known)):
            props = '{"$browser": "Chrome"' + (', "beta": true' if p < 2 else "") + "}"
            rows.append({"uuid": f"{p}-{i}", "event": "$pageview", "distinct_id": did, "person_id": f"person-{p}",
                         "timestamp": f"2026-03-0{1 + i}T10:00:00Z", "properties": props})  # fmt: skip
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(pl.DataFrame(rows).write_ndjson().splitlines()) + "\n")
    stats = open_export(path).property_keys(sample_rows=None)
    users = dict(zip(stats["key"], stats["users"]))
    assert users == {"$browser": 10, "beta": 2}
    # Without persons (the UI's CSV here), distinct ids are counted.
    csv = tmp_path / "e.csv"
    pl.DataFrame(
        {
            "uuid": [r["uuid"] for r in rows],
            "event": "$pageview",
            "distinct_id": [r["distinct_id"] for r in rows],
            "timestamp": [r["timestamp"] for r in rows],
            "properties.$browser": "Chrome",
            "properties.beta": ["true" if "beta" in r["properties"] else None for r in rows],
        }  # fmt: skip
    ).write_csv(csv)
    stats = open_export(csv).property_keys(sample_rows=None)
    assert dict(zip(stats["key"], stats["users"])) == {"$browser": 20, "beta": 4}


def test_a_per_user_number_with_few_values_is_drawn_with_the_user_s_other_constants() -> None:
    # Each user has one OS and one OS version of that OS, sent as a number on every event.
    g = np.random.default_rng(5)
    users = np.arange(300)
    ios = g.random(users.size) < 0.5
    version = np.where(ios, g.choice([16.7, 17.4, 17.5], users.size), g.choice([13.0, 14.0], users.size))
    rows = np.repeat(users, 6)
    sample = pl.DataFrame(
        {
            "user": rows,
            "event": np.where(np.arange(rows.size) % 2 == 0, "$screen", "tap"),
            "$os": np.where(ios, "iOS", "Android")[rows],
            "$os_version": version[rows].astype(str),
            "ms": g.exponential(100, rows.size).round(1).astype(str),  # a measurement: stays a sketch
        }
    )
    model = fit_properties(sample, ["$os", "$os_version", "ms"], K, 11, 50, dropped=[])
    assert set(model.constants) == {"$os", "$os_version"} and model.kinds["$os_version"] == "number"
    pairs = set(model.combos.select("$os", "$os_version").iter_rows())
    assert pairs and all((os == "iOS") == (float(v) > 15) for os, v in pairs), pairs
    assert model.combo_share == pytest.approx(1.0)
    assert set(model.numbers["key"]) == {"ms"}


def test_a_number_sketch_ends_at_values_k_users_reached() -> None:
    # Sixty users' order amounts around 100, and one user's ten orders of the same large amount.
    g = np.random.default_rng(8)
    amounts = np.r_[g.normal(100, 10, 240).round(2), np.full(10, 987654.32)]
    users = np.r_[np.repeat(np.arange(60), 4), np.full(10, 60)]
    sample = pl.DataFrame({"user": users, "event": "order", "amount": amounts.astype(str)})
    model = fit_properties(sample, ["amount"], K, 11, 50, dropped=[])
    top = float(model.numbers["value"].max())
    assert top < 200 and 987654.32 not in set(model.numbers["value"].to_list())


def test_users_of_rare_full_combinations_keep_their_device_and_os_together() -> None:
    # A device gives its OS and library; the time zone and the installed version are independent of both:
    # over five keys most users' full combination is seen for fewer than k users.
    g = np.random.default_rng(11)
    n = 600
    devices = {"iPhone 15": "iOS", "iPhone 13": "iOS", "Pixel 8": "Android", "Galaxy S23": "Android"}
    device = g.choice(list(devices), n)
    os_ = np.array([devices[d] for d in device])
    zones = g.choice([f"Zone/{i}" for i in range(12)], n)
    version = g.choice(["2.3.1", "2.4.0", "2.4.1"], n)
    rows = np.repeat(np.arange(n), 3)
    sample = pl.DataFrame(
        {
            "user": rows,
            "event": "$screen",
            "$device_model": device[rows],
            "$os": os_[rows],
            "$lib": np.where(os_ == "iOS", "posthog-ios", "posthog-android")[rows],
            "$timezone": zones[rows],
            "version": version[rows],
        }
    )
    keys = ["$device_model", "$os", "$lib", "$timezone", "version"]
    model = fit_properties(sample, keys, K, 11, 50, dropped=[])
    assert set(model.constants) == set(keys)
    assert model.combo_share > 0.97  # almost every user drawn as a whole combination
    pairs = set(model.combos.select("$device_model", "$os", "$lib").iter_rows())
    assert all(devices[d] == o and (o == "iOS") == (lib == "posthog-ios") for d, o, lib in pairs), pairs
    assert model.combos["share"].sum() == pytest.approx(1.0)
    # Every combination of the device keys holds k users; the time zones beside them are each seen for k.
    assert model.combos.select("$timezone").n_unique() == 12


def test_each_class_draws_its_own_devices() -> None:
    # Loyal readers (class 1) read on a desktop, drive-by readers (class 0) mostly on a phone.
    g = np.random.default_rng(13)
    n = 800
    cls = (np.arange(n) % 4 == 0).astype(np.int16)
    mobile = g.random(n) < np.where(cls == 1, 0.1, 0.8)
    rows = np.repeat(np.arange(n), 2)
    sample = pl.DataFrame(
        {
            "user": rows,
            "event": "$pageview",
            "$device_type": np.where(mobile, "Mobile", "Desktop")[rows],
            "$browser": np.where(mobile, "Mobile Safari", "Chrome")[rows],
        }
    )
    user_class = pl.DataFrame({"user": np.arange(n), "class": cls})
    model = fit_properties(sample, ["$device_type", "$browser"], K, 11, 50, dropped=[], user_class=user_class)
    by_class = model.class_combos.group_by("class", "$device_type").agg(pl.col("share").sum()).sort("class")
    share = {(c, d): s for c, d, s in by_class.iter_rows()}
    assert share[(1, "Desktop")] == pytest.approx(1 - mobile[cls == 1].mean(), abs=1e-9)
    assert share[(0, "Mobile")] == pytest.approx(mobile[cls == 0].mean(), abs=1e-9)
    assert model.class_combos.group_by("class").agg(pl.col("share").sum())[
        "share"
    ].to_list() == pytest.approx([1, 1])


def _accounts_sample(groups: bool) -> pl.DataFrame:
    """80 users of eight companies (ten each, as PostHog's ``$groups``): pages and titles named after a company's
    own people or itself, which all ten colleagues saw, beside pages every company has."""
    u = np.repeat(np.arange(80), 6)
    team = u // 10
    i = np.arange(u.size)
    frame = pl.DataFrame(
        {
            "user": u,
            "event": "$pageview",
            "title": [f"Invoices of Jane Doe{t}" if j % 2 else "Dashboard" for j, t in zip(i, team)],
            "$current_url": [
                f"https://app.example/org/acme-{t}/settings" if j % 3 == 0 else "https://app.example/home"
                for j, t in zip(i, team)
            ],
            "plan": [["free", "pro"][x % 2] if t > 1 else "enterprise" for x, t in zip(u, team)],
        }
    )
    if groups:
        frame = frame.with_columns(
            pl.Series("$groups", [f'{{"company": "c{t}", "project": "p{x % 20}"}}' for x, t in zip(u, team)])
        )
    return frame


def test_text_only_one_account_s_users_saw_is_that_account_s_data() -> None:
    keys = ["title", "$current_url", "plan"]
    plain = _written(fit_properties(_accounts_sample(groups=False), keys, K, 11, 50, dropped=[]))
    assert (
        "Jane Doe" in plain and "acme-" in plain
    )  # k users each: kept when nothing says they are one account
    model = fit_properties(_accounts_sample(groups=True), keys, K, 11, 50, dropped=[])
    text = _written(model)
    assert "Jane Doe" not in text and "acme-" not in text and "enterprise" not in text  # one or two companies
    assert "Dashboard" in text and "https://app.example/home" in text and "pro" in text and "free" in text
    assert "c1" not in text and "p1" not in text  # the groups themselves are never written


def test_groups_are_read_from_posthog_s_object_or_its_flattened_columns() -> None:
    users = pl.DataFrame({"user": [1, 1, 2, 3, 4]})
    holders = group_holders(
        users.with_columns(pl.Series("$groups", ['{"company": "a"}', None, '{"company": "a"}', "{}", None]))
    )
    assert holders is not None
    assert dict(holders.sort("user").select("user", "__group0").iter_rows())[1] == "a"
    assert holders.filter(pl.col("user").is_in([3, 4]))["__group0"].str.starts_with("\x00").all()
    flat = group_holders(users.with_columns(pl.Series("$groups.company", ["a", "a", "b", None, None])))
    assert flat is not None and flat["__group0"].n_unique() == 4  # a, b, and two users alone
    assert group_holders(users.with_columns(pl.lit(None, pl.String).alias("$group_0"))) is None


@pytest.mark.parametrize("shape", ["batch-jsonl", "csv"])
def test_the_users_groups_reach_the_fit_from_the_export(shape: str, tmp_path: Path) -> None:
    frame = synthetic_events(users=120, days=14, seed=3)
    company = pl.lit("acme") + (pl.col("distinct_id").hash(seed=1) % 3).cast(pl.String)
    frame = frame.with_columns(pl.struct(company.alias("company")).alias("$groups"))
    path = write_export(frame, tmp_path / f"export.{'csv' if shape == 'csv' else 'jsonl'}", shape)
    loaded = load_for_fit(path, None, FitConfig())
    assert group_keys(loaded.key_stats) == ["$groups"]
    sample = loaded.property_sample
    assert "$groups" in sample.columns
    holders = group_holders(sample.rename({"distinct_id": "user"}))
    assert holders is not None and set(holders["__group0"]) == {"acme0", "acme1", "acme2"}
