"""An edition's schedule in words for readers: "every weekday at 07:00 Bogotá time".

Reads the five cron fields as cron does (day of week 0 or 7 is Sunday, 1 is Monday; names
such as `mon-fri` too) and words the shapes editions use: every day, weekdays, chosen days
of the week, chosen days of the month, at one or a few times. Anything else (steps, chosen
months, both kinds of day at once) is quoted as it is, with its time zone, rather than
worded wrongly. Pure: text in, text out.
"""

from __future__ import annotations

from babel.dates import get_timezone_location

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONDAY_FIRST = (1, 2, 3, 4, 5, 6, 0)
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
ALL_DAYS = frozenset(range(7))
MOST_TIMES = 6  # past this many times a day, the expression is clearer than a list

_WORDS = {
    "en": {
        "days": ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"),
        "and": "and",
        "every_day": "every day {times}",
        "weekdays": "every weekday {times}",
        "on_days": "every {days} {times}",
        "month_day": "on day {days} of every month {times}",
        "month_days": "on days {days} of every month {times}",
        "other": "on the schedule “{cron}”",
        "zone": "{when} {city} time",
        "utc": "{when} UTC",
    },
    "es": {
        "days": ("domingo", "lunes", "martes", "miércoles", "jueves", "viernes", "sábado"),
        "and": "y",
        "every_day": "todos los días {times}",
        "weekdays": "de lunes a viernes {times}",
        "on_days": "los {days} {times}",
        "month_day": "el día {days} de cada mes {times}",
        "month_days": "los días {days} de cada mes {times}",
        "other": "según el calendario «{cron}»",
        "zone": "{when}, hora de {city}",
        "utc": "{when}, hora UTC",
    },
}


class _NotWorded(Exception):
    """A cron field whose shape this module does not put into words."""


def _values(field: str, low: int, high: int, names: tuple[str, ...] = ()) -> frozenset[int] | None:
    """The numbers a field lists (ranges and names expanded); None for `*`."""
    if field == "*":
        return None
    found: set[int] = set()
    for part in field.lower().split(","):
        start, _, end = part.partition("-")
        try:
            first = names.index(start) if start in names else int(start)
            last = (names.index(end) if end in names else int(end)) if end else first
        except ValueError as exc:  # a step, a `?`, an `L`...
            raise _NotWorded(part) from exc
        if not low <= first <= last <= high:
            raise _NotWorded(part)
        found.update(range(first, last + 1))
    return frozenset(found)


def _join(items: list[str], conjunction: str) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def _times(hours: frozenset[int], minutes: frozenset[int], language: str) -> str:
    clock = [f"{h:02d}:{m:02d}" for h in sorted(hours) for m in sorted(minutes)]
    if language == "es":
        # "a la 01:00" but "a las 07:00": the article agrees with the hour.
        return _join([("a la " if t.startswith("01:") else "a las ") + t for t in clock], "y")
    return "at " + _join(clock, "and")


def _when(cron: str, language: str) -> str:
    words = _WORDS[language]
    fields = cron.split()
    if len(fields) != 5:
        raise _NotWorded(cron)
    minute, hour, day, month, weekday = fields
    minutes, hours = _values(minute, 0, 59), _values(hour, 0, 23)
    if minutes is None or hours is None or len(minutes) * len(hours) > MOST_TIMES:
        raise _NotWorded(cron)
    if _values(month, 1, 12) is not None:
        raise _NotWorded(month)
    days_of_month = _values(day, 1, 31)
    days_of_week = _values(weekday, 0, 7, _DAY_NAMES)
    times = _times(hours, minutes, language)
    if days_of_month is not None:
        if days_of_week is not None:  # cron runs on either kind of day: too subtle to word
            raise _NotWorded(cron)
        key = "month_day" if len(days_of_month) == 1 else "month_days"
        return words[key].format(days=_join([str(d) for d in sorted(days_of_month)], words["and"]), times=times)
    days = None if days_of_week is None else frozenset(d % 7 for d in days_of_week)
    if days is None or days == ALL_DAYS:
        return words["every_day"].format(times=times)
    if days == WEEKDAYS:
        return words["weekdays"].format(times=times)
    names = [words["days"][d] for d in MONDAY_FIRST if d in days]
    if language == "es":  # "los lunes y jueves": plural of the weekday names
        names = [n if n.endswith("s") else n + "s" for n in names]
    return words["on_days"].format(days=_join(names, words["and"]), times=times)


def in_words(cron: str, timezone: str, language: str) -> str:
    """When an edition goes out, in `language` (English for languages other than Spanish)."""
    language = language if language in _WORDS else "en"
    words = _WORDS[language]
    try:
        when = _when(cron.strip(), language)
    except _NotWorded:
        when = words["other"].format(cron=" ".join(cron.split()))
    if timezone in ("UTC", "Etc/UTC", "GMT"):
        return words["utc"].format(when=when)
    city = get_timezone_location(timezone, locale=language, return_city=True)
    return words["zone"].format(when=when, city=city)
