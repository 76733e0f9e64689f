"""When each layer's scheduled query runs in ``scheduled`` mode (pure, no Pulumi).

A table spec has one schedule (``every 24 hours``, ``every 30 minutes``, ``every day 03:00``,
``every monday 06:30``). Its five layers and its checks all run on it, each one ``offset`` after
the one before, so staging has landed before archive reads it, and so on:

* interval schedules (``every N hours|minutes``) keep the spec's string and get their phase from
  ``schedule_options.start_time``: the base time plus ``i * offset`` for the i-th layer;
* time-of-day schedules (``every day 03:00``) ignore ``start_time`` for the time of day, so the
  offset is added to the time in the string itself (crossing midnight moves a weekday schedule to
  the next day). ``start_time`` is still set (the base time) so no run happens before it.

Two plans are refused with a :class:`ScheduleError` that says what to change:

* offsets that do not fit inside the schedule's period (the last step would start at or after
  the next run's first step, e.g. six steps 15 minutes apart on ``every 1 hours``): two runs of
  a table would overlap;
* a step that would start exactly on the hour (minute 00) at any of its runs: BigQuery's
  scheduled-query documentation warns that such runs may trigger twice, and two MERGEs of one
  table conflict. Use an off-the-hour ``start_time`` (``02:07``) or spec time (``03:07``).

Deterministic: the same inputs always give the same strings (no "now").
"""

from __future__ import annotations

import datetime as _dt
import math
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


def layer_schedules(schedule: str, start_time: str, offset_minutes: int, layers: int = 6) -> list[LayerSchedule]:
    """One :class:`LayerSchedule` per step (the five layers, then the checks), in run order."""
    try:
        base = _dt.datetime.strptime(start_time, _START)
    except ValueError:
        raise ScheduleError(f"start_time {start_time!r}: expected UTC 'YYYY-MM-DDTHH:MM:SSZ'") from None
    if offset_minutes < 0:
        raise ScheduleError(f"offset {offset_minutes}: expected minutes >= 0")
    every = interval_minutes(schedule)
    if (layers - 1) * offset_minutes >= every:
        raise ScheduleError(
            f"{layers} steps {offset_minutes} minutes apart span {(layers - 1) * offset_minutes} minutes, which does not fit "
            f"inside {schedule!r} (every {every} minutes): two runs would overlap; "
            f"expected layer_offset_minutes below {math.ceil(every / (layers - 1))}"
        )
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
        on_the_hour(schedule, out[-1], i)
    return out


def on_the_hour(schedule: str, step: LayerSchedule, index: int) -> None:
    """Refuse a step that would start at minute 00 at any of its runs (see the module doc)."""
    m = _DAILY.match(step.schedule)
    if m:
        if (m.group(3) or "00") == "00":
            raise ScheduleError(
                f"step {index + 1} of {schedule!r} would run on the hour ({step.schedule}), which may trigger twice; "
                f"expected a time off the hour, e.g. {step.schedule[-5:-2]}07"
            )
        return
    # runs at start + k * interval: some run is on the hour iff minute(start) is a multiple
    # of gcd(interval, 60)
    minute = int(step.start_time[14:16])
    if minute % math.gcd(step.interval_minutes, 60) == 0:
        raise ScheduleError(
            f"step {index + 1} of {schedule!r} would run on the hour (first at {step.start_time}), which may trigger twice; "
            "expected a start_time off the hour, e.g. 02:07"
        )
