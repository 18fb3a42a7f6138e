"""Maintenance windows: parsing, evaluation in the window's time zone, DST."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.maintenance import Window, in_window, parse_window, validate_windows

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]


# --- parsing ---------------------------------------------------------------------------------


def test_parse_single_day() -> None:
    w = parse_window("Sat 01:00-05:00 Europe/Berlin")
    assert w == Window(days=frozenset({5}), start=time(1, 0), end_minutes=300,
                       tz="Europe/Berlin", text="Sat 01:00-05:00 Europe/Berlin")
    assert not w.overnight


def test_parse_range_overnight() -> None:
    w = parse_window("Mon-Fri 22:00-02:00 UTC")
    assert w.days == frozenset({0, 1, 2, 3, 4})
    assert w.start == time(22, 0)
    assert w.end_minutes == 120
    assert w.overnight


def test_parse_list_and_end_of_day() -> None:
    w = parse_window("Sat,Sun 00:00-24:00 UTC")
    assert w.days == frozenset({5, 6})
    assert w.end_minutes == 1440


def test_parse_daily() -> None:
    assert parse_window("daily 01:00-03:00 America/New_York").days == frozenset(range(7))


@pytest.mark.parametrize("text", ["sat 01:00-02:00 UTC", "SATURDAY 01:00-02:00 UTC",
                                  "Saturday 01:00-02:00 UTC", "DAILY 01:00-02:00 UTC"])
def test_day_names_case_insensitive_short_or_full(text: str) -> None:
    assert 5 in parse_window(text).days


def test_range_wraps_over_week_end() -> None:
    assert parse_window("Fri-Mon 01:00-02:00 UTC").days == frozenset({4, 5, 6, 0})


def test_mixed_list_and_range() -> None:
    assert parse_window("Mon-Wed,Sat 01:00-02:00 UTC").days == frozenset({0, 1, 2, 5})


def test_whitespace_is_collapsed_in_text() -> None:
    assert parse_window("  Sat   01:00-05:00  UTC ").text == "Sat 01:00-05:00 UTC"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "needs 3 parts"),
        ("Sat 01:00-05:00", "needs 3 parts"),
        ("Sat 01:00-05:00 UTC extra", "needs 3 parts"),
        ("Funday 01:00-05:00 UTC", "unknown day 'Funday'"),
        ("Mon-Xyz 01:00-05:00 UTC", "unknown day 'Xyz'"),
        ("Mon,,Tue 01:00-05:00 UTC", "empty day"),
        ("Sat 1-5 UTC", "not HH:MM-HH:MM"),
        ("Sat 25:00-05:00 UTC", "start time 25:00"),
        ("Sat 24:00-05:00 UTC", "start time 24:00"),
        ("Sat 01:60-05:00 UTC", "start time 01:60"),
        ("Sat 01:00-24:30 UTC", "end time 24:30"),
        ("Sat 01:00-01:00 UTC", "start and end are equal"),
        ("Sat 01:00-05:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("Sat 01:00-05:00 ../../etc/passwd", "unknown time zone"),
    ],
)
def test_parse_errors_say_what_is_wrong_and_show_format(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_window(text)
    message = str(info.value)
    assert fragment in message
    assert "expected 'DAYS HH:MM-HH:MM TIME_ZONE'" in message


def test_parse_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="not a string"):
        parse_window(5)  # type: ignore[arg-type]


def test_validate_windows_returns_normalized_and_names_bad_entry() -> None:
    assert validate_windows(["Sat  01:00-05:00 UTC", "daily 01:00-02:00 UTC"]) == [
        "Sat 01:00-05:00 UTC", "daily 01:00-02:00 UTC"]
    assert validate_windows([]) == []
    with pytest.raises(ValueError, match=r"maintenance window #2: .*'Sat 9-5 UTC'"):
        validate_windows(["Sat 01:00-05:00 UTC", "Sat 9-5 UTC"])
    with pytest.raises(ValueError, match="list of strings"):
        validate_windows("Sat 01:00-05:00 UTC")


# --- evaluation ------------------------------------------------------------------------------


def test_no_windows_means_always() -> None:
    assert in_window([], utc(2024, 1, 1, 12, 0))


def test_simple_window_boundaries_start_inclusive_end_exclusive() -> None:
    windows = ["Sat 01:00-05:00 UTC"]  # 2024-01-06 is a Saturday
    assert not in_window(windows, utc(2024, 1, 6, 0, 59, 59))
    assert in_window(windows, utc(2024, 1, 6, 1, 0))
    assert in_window(windows, utc(2024, 1, 6, 4, 59, 59))
    assert not in_window(windows, utc(2024, 1, 6, 5, 0))
    assert not in_window(windows, utc(2024, 1, 7, 2, 0))  # Sunday


def test_window_evaluated_in_its_time_zone() -> None:
    windows = ["Sat 01:00-05:00 Europe/Berlin"]  # winter: UTC+1
    assert in_window(windows, utc(2024, 1, 6, 0, 0))  # 01:00 Berlin
    assert not in_window(windows, utc(2024, 1, 6, 4, 0))  # 05:00 Berlin
    # Friday 23:30 UTC is already Saturday 00:30 in Berlin, still before the window.
    assert not in_window(windows, utc(2024, 1, 5, 23, 30))


def test_overnight_runs_into_next_day() -> None:
    windows = ["Fri 22:00-02:00 UTC"]  # 2024-01-05 Friday
    assert not in_window(windows, utc(2024, 1, 5, 21, 59))
    assert in_window(windows, utc(2024, 1, 5, 22, 0))
    assert in_window(windows, utc(2024, 1, 6, 1, 59))  # Saturday early morning
    assert not in_window(windows, utc(2024, 1, 6, 2, 0))
    # Friday early morning belongs to Thursday's night, which is not configured.
    assert not in_window(windows, utc(2024, 1, 5, 1, 0))


def test_overnight_weekday_range_sunday_night_not_included() -> None:
    windows = ["Mon-Fri 22:00-02:00 UTC"]
    assert in_window(windows, utc(2024, 1, 6, 1, 0))  # Saturday 01:00: Friday's night
    assert not in_window(windows, utc(2024, 1, 7, 23, 0))  # Sunday night
    assert not in_window(windows, utc(2024, 1, 8, 1, 0))  # Monday 01:00: Sunday's night
    assert in_window(windows, utc(2024, 1, 8, 23, 0))


def test_whole_day_window() -> None:
    windows = ["Sat,Sun 00:00-24:00 UTC"]
    assert in_window(windows, utc(2024, 1, 6, 0, 0))
    assert in_window(windows, utc(2024, 1, 7, 23, 59, 59))
    assert not in_window(windows, utc(2024, 1, 8, 0, 0))
    assert not in_window(windows, utc(2024, 1, 5, 23, 59, 59))


def test_any_of_several_windows() -> None:
    windows: list[Window | str] = [parse_window("Sat 01:00-02:00 UTC"), "Sun 03:00-04:00 UTC"]
    assert in_window(windows, utc(2024, 1, 6, 1, 30))
    assert in_window(windows, utc(2024, 1, 7, 3, 30))
    assert not in_window(windows, utc(2024, 1, 7, 1, 30))


def test_daylight_saving_shifts_utc_instant() -> None:
    windows = ["daily 01:00-03:00 America/New_York"]
    # Winter (EST, UTC-5): 01:00 local is 06:00 UTC. Summer (EDT, UTC-4): 05:00 UTC.
    assert in_window(windows, utc(2024, 1, 15, 6, 0))
    assert not in_window(windows, utc(2024, 1, 15, 5, 30))
    assert in_window(windows, utc(2024, 7, 15, 5, 0))
    assert not in_window(windows, utc(2024, 7, 15, 7, 0))


def test_spring_forward_skipped_hour_never_opens() -> None:
    # Europe/Berlin 2024-03-31 (Sunday): 02:00 jumps to 03:00.
    windows = ["Sun 02:00-03:00 Europe/Berlin"]
    instant = utc(2024, 3, 30, 23, 0)
    while instant < utc(2024, 4, 1, 0, 0):
        assert not in_window(windows, instant), instant
        instant += timedelta(minutes=5)


def test_fall_back_repeated_hour_open_in_both_passes() -> None:
    # Europe/Berlin 2024-10-27 (Sunday): 03:00 CEST goes back to 02:00 CET.
    windows = ["Sun 02:00-03:00 Europe/Berlin"]
    assert in_window(windows, utc(2024, 10, 27, 0, 30))  # 02:30 CEST
    assert in_window(windows, utc(2024, 10, 27, 1, 30))  # 02:30 CET
    assert not in_window(windows, utc(2024, 10, 27, 2, 0))  # 03:00 CET


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        in_window(["Sat 01:00-02:00 UTC"], datetime(2024, 1, 6, 1, 30))


def test_non_utc_aware_now_is_converted() -> None:
    now = datetime(2024, 1, 6, 2, 30, tzinfo=BERLIN)  # 01:30 UTC
    assert in_window(["Sat 01:00-02:00 UTC"], now)


# --- properties ------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
         "America/Sao_Paulo", "Pacific/Chatham"]
DAY_TOKENS = ["Mon", "tue", "Wednesday", "THU", "fri", "Sat", "sun"]


@st.composite
def window_texts(draw: st.DrawFn) -> tuple[str, frozenset[int], int, int, str]:
    days = draw(st.sets(st.integers(0, 6), min_size=1, max_size=7))
    start = draw(st.integers(0, 1439))
    end = draw(st.integers(0, 1440).filter(lambda e: e != start))
    tz = draw(st.sampled_from(ZONES))
    day_text = ",".join(DAY_TOKENS[d] for d in sorted(days))
    text = f"{day_text} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d} {tz}"
    return text, frozenset(days), start, end, tz


instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 12, 31),
                        timezones=st.just(UTC))


def reference_in_window(days: frozenset[int], start: int, end: int, tz: str, now: datetime) -> bool:
    """A second, independent evaluation: enumerate the local start days around `now`."""
    loc = now.astimezone(ZoneInfo(tz))
    wall = loc.replace(tzinfo=None)
    for back in (0, 1):
        day = (wall - timedelta(days=back)).date()
        if day.weekday() not in days:
            continue
        opens = datetime.combine(day, time()) + timedelta(minutes=start)
        closes = datetime.combine(day, time()) + timedelta(minutes=end if end > start else end + 1440)
        if opens <= wall < closes:
            return True
    return False


@settings(max_examples=400)
@given(window_texts(), instants)
def test_in_window_matches_reference(spec: tuple[str, frozenset[int], int, int, str], now: datetime) -> None:
    text, days, start, end, tz = spec
    w = parse_window(text)
    assert w.days == days and w.start_minutes == start and w.end_minutes == end and w.tz == tz
    assert in_window([w], now) == reference_in_window(days, start, end, tz, now)
    assert in_window([text], now) == in_window([w], now)


DST_DAYS = [datetime(2024, 3, 10, tzinfo=UTC), datetime(2024, 11, 3, tzinfo=UTC),
            datetime(2024, 3, 31, tzinfo=UTC), datetime(2024, 10, 27, tzinfo=UTC),
            datetime(2024, 4, 7, tzinfo=UTC), datetime(2024, 10, 6, tzinfo=UTC)]


@settings(max_examples=400)
@given(window_texts(), st.sampled_from(DST_DAYS), st.integers(-36 * 60, 36 * 60))
def test_in_window_matches_reference_around_dst_changes(
    spec: tuple[str, frozenset[int], int, int, str], day: datetime, minutes: int
) -> None:
    text, days, start, end, tz = spec
    now = day + timedelta(minutes=minutes)
    assert in_window([text], now) == reference_in_window(days, start, end, tz, now)


@given(window_texts(), instants)
def test_daily_whole_day_window_always_open(spec: tuple[str, frozenset[int], int, int, str], now: datetime) -> None:
    tz = spec[4]
    assert in_window([f"daily 00:00-24:00 {tz}"], now)


@given(st.text(max_size=40))
def test_parse_window_raises_only_value_error(text: str) -> None:
    try:
        parse_window(text)
    except ValueError:
        pass
