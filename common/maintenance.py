"""Weekly maintenance windows, shared by the coordinator and the agent.

A window is one line of text: DAYS START-END TIME_ZONE, for example

    Sat 01:00-05:00 Europe/Berlin
    Mon-Fri 22:00-02:00 UTC            (END before START: runs past midnight into the next day)
    Sat,Sun 00:00-24:00 UTC            (24:00 is the end of the day)
    daily 01:00-03:00 America/New_York

DAYS is `daily`, a day, a range (`Mon-Fri`, `Fri-Mon` wraps over the week's end) or a comma list
of days and ranges; day names are 3-letter or full, any case. DAYS names the day a window
*starts*: `Fri 22:00-02:00 UTC` runs from Friday 22:00 to Saturday 02:00.

Windows are wall-clock times in their own time zone, so they follow daylight saving time: on
the day clocks go forward a window inside the skipped hour does not occur, and on the day they go
back a window inside the repeated hour is open during both passes. Start is inclusive, end
exclusive. Pure: no clock reads, `now` is a parameter. Stdlib and zoneinfo only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Window", "parse_window", "in_window", "next_opening", "validate_windows", "FORMAT_HELP"]

FORMAT_HELP = (
    "expected 'DAYS HH:MM-HH:MM TIME_ZONE', e.g. 'Sat 01:00-05:00 Europe/Berlin', "
    "'Mon-Fri 22:00-02:00 UTC' or 'daily 01:00-03:00 America/New_York'"
)

_DAY_NAMES: dict[str, int] = {}
for _index, _name in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
):
    _DAY_NAMES[_name] = _index
    _DAY_NAMES[_name[:3]] = _index

_TIME_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class Window:
    """One weekly maintenance window."""

    days: frozenset[int]
    """Days the window starts on: 0 = Monday … 6 = Sunday."""
    start: time
    """Local wall-clock start (inclusive)."""
    end_minutes: int
    """Local wall-clock end in minutes after midnight (exclusive); 1440 is midnight at the end
    of the day. Less than or equal to the start means the window runs into the next day."""
    tz: str
    """IANA time zone name the times are read in."""
    text: str
    """The window as written (whitespace collapsed)."""

    @property
    def start_minutes(self) -> int:
        return self.start.hour * 60 + self.start.minute

    @property
    def overnight(self) -> bool:
        return self.end_minutes <= self.start_minutes

    def contains(self, now: datetime) -> bool:
        """True if the aware instant `now` falls inside this window."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("in_window needs a timezone-aware datetime (UTC), got a naive one")
        local = now.astimezone(ZoneInfo(self.tz))
        # Seconds since local midnight on the wall clock: DST shifts move the clock, and the
        # window is defined on the clock.
        second_of_day = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        start = self.start_minutes * 60
        end = self.end_minutes * 60
        day = local.weekday()
        if not self.overnight:
            return day in self.days and start <= second_of_day < end
        if day in self.days and second_of_day >= start:
            return True
        return (day - 1) % 7 in self.days and second_of_day < end


def _bad(text: str, what: str) -> ValueError:
    return ValueError(f"invalid maintenance window {text!r}: {what}; {FORMAT_HELP}")


def _day(token: str, text: str) -> int:
    day = _DAY_NAMES.get(token.lower())
    if day is None:
        raise _bad(text, f"unknown day {token!r} (use Mon..Sun, Monday..Sunday or 'daily')")
    return day


def _parse_days(token: str, text: str) -> frozenset[int]:
    lowered = token.lower()
    if lowered in ("daily", "everyday", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in token.split(","):
        if not part:
            raise _bad(text, f"empty day in {token!r}")
        if "-" in part:
            first_text, _, last_text = part.partition("-")
            first, last = _day(first_text, text), _day(last_text, text)
            # A range may wrap over the end of the week: Fri-Mon is Fri, Sat, Sun, Mon.
            length = (last - first) % 7
            days.update((first + i) % 7 for i in range(length + 1))
        else:
            days.add(_day(part, text))
    return frozenset(days)


def _parse_times(token: str, text: str) -> tuple[time, int]:
    match = _TIME_RANGE.match(token)
    if not match:
        raise _bad(text, f"time range {token!r} is not HH:MM-HH:MM")
    sh, sm, eh, em = (int(g) for g in match.groups())
    if sh > 23 or sm > 59:
        raise _bad(text, f"start time {sh:02d}:{sm:02d} is not a time of day (00:00..23:59)")
    if em > 59 or eh > 24 or (eh == 24 and em != 0):
        raise _bad(text, f"end time {eh:02d}:{em:02d} is not a time of day (00:00..24:00)")
    start_minutes = sh * 60 + sm
    end_minutes = eh * 60 + em
    if end_minutes == start_minutes or (start_minutes == 0 and end_minutes == 0):
        raise _bad(text, "start and end are equal; use 00:00-24:00 for a whole day")
    return time(sh, sm), end_minutes


def parse_window(text: str) -> Window:
    """Parse one window line; ValueError saying what is wrong and showing the format."""
    if not isinstance(text, str):
        raise ValueError(f"invalid maintenance window {text!r}: not a string; {FORMAT_HELP}")
    parts = text.split()
    normalized = " ".join(parts)
    if len(parts) != 3:
        raise _bad(normalized, f"needs 3 parts separated by spaces, got {len(parts)}")
    days_text, times_text, tz = parts
    days = _parse_days(days_text, normalized)
    start, end_minutes = _parse_times(times_text, normalized)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad(normalized, f"unknown time zone {tz!r} (use an IANA name such as UTC or Europe/Berlin)") from None
    return Window(days=days, start=start, end_minutes=end_minutes, tz=tz, text=normalized)


def in_window(windows: Sequence[Window | str], now: datetime) -> bool:
    """True if `now` (aware) falls in any of `windows`; no windows configured means always."""
    if not windows:
        return True
    return any(
        (w if isinstance(w, Window) else parse_window(w)).contains(now) for w in windows
    )


def next_opening(windows: Sequence[Window | str], now: datetime, within: timedelta) -> datetime | None:
    """When a window is next open: `now` if one is open already, else the earliest window start
    after `now` and no later than `now + within`; None if none opens by then (or no windows:
    then every instant is in the window and `now` is returned)."""
    if in_window(windows, now):
        return now
    limit = now + within
    best: datetime | None = None
    for w in (w if isinstance(w, Window) else parse_window(w) for w in windows):
        zone = ZoneInfo(w.tz)
        today = now.astimezone(zone).date()
        for k in range(-1, within.days + 2):
            day = today + timedelta(days=k)
            if day.weekday() not in w.days:
                continue
            start = datetime.combine(day, w.start, tzinfo=zone).astimezone(now.tzinfo)
            # A start inside a skipped hour (clocks going forward) does not occur.
            if now < start <= limit and w.contains(start) and (best is None or start < best):
                best = start
    return best


def validate_windows(texts: Iterable[str]) -> list[str]:
    """The windows as normalized text; ValueError naming the first bad entry."""
    if isinstance(texts, str):
        raise ValueError(f"maintenance windows must be a list of strings; {FORMAT_HELP}")
    result: list[str] = []
    for index, text in enumerate(texts):
        try:
            result.append(parse_window(text).text)
        except ValueError as exc:
            raise ValueError(f"maintenance window #{index + 1}: {exc}") from None
    return result
