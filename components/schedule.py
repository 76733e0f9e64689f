"""When each layer's scheduled query runs in ``scheduled`` mode (pure, no Pulumi).

A table spec has one schedule (``every 24 hours``, ``every 30 minutes``, ``every day 03:00``,
``every monday 06:30``). Its five layers all run on it, each one ``offset`` after the layer
before, so staging has landed before archive reads it, and so on:

* interval schedules (``every N hours|minutes``) keep the spec's string and get their phase from
  ``schedule_options.start_time``: the base time plus ``i * offset`` for the i-th layer;
* time-of-day schedules (``every day 03:00``) ignore ``start_time`` for the time of day, so the
  offset is added to the time in the string itself (crossing midnight moves a weekday schedule to
  the next day). ``start_time`` is still set (the base time) so no run happens before it.

Deterministic: the same inputs always give the same strings (no "now").
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

from pipeline_sql.spec import schedule_minutes

_DAILY = re.compile(r"^every (day|monday|tuesday|wednesday|thursday|friday|saturday|sunday)(?: (\d\d):(\d\d))?$")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_START = "%Y-%m-%dT%H:%M:%SZ"


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class LayerSchedule:
    schedule: str  # Data Transfer Service schedule string
    start_time: str  # RFC 3339 UTC, schedule_options.start_time
    interval_minutes: int  # nominal minutes between two runs


def interval_minutes(schedule: str) -> int:
    """Nominal minutes between runs of a schedule string (the staging window uses the same)."""
    try:
        return schedule_minutes(schedule)
    except ValueError as e:
        raise ScheduleError(str(e)) from None


def layer_schedules(schedule: str, start_time: str, offset_minutes: int, layers: int = 5) -> list[LayerSchedule]:
    """One :class:`LayerSchedule` per layer, in run order."""
    try:
        base = _dt.datetime.strptime(start_time, _START)
    except ValueError:
        raise ScheduleError(f"start_time {start_time!r}: expected UTC 'YYYY-MM-DDTHH:MM:SSZ'") from None
    if offset_minutes < 0:
        raise ScheduleError(f"offset {offset_minutes}: expected minutes >= 0")
    every = interval_minutes(schedule)
    out = []
    for i in range(layers):
        delta = _dt.timedelta(minutes=i * offset_minutes)
        m = _DAILY.match(schedule)
        if m:
            day, hh, mm = m.group(1), int(m.group(2) or 0), int(m.group(3) or 0)
            total = hh * 60 + mm + i * offset_minutes
            days, minute_of_day = divmod(total, 24 * 60)
            if day != "day" and days:
                day = _WEEKDAYS[(_WEEKDAYS.index(day) + days) % 7]
            text = f"every {day} {minute_of_day // 60:02d}:{minute_of_day % 60:02d}"
            out.append(LayerSchedule(text, base.strftime(_START), every))
        else:
            out.append(LayerSchedule(schedule, (base + delta).strftime(_START), every))
    return out
