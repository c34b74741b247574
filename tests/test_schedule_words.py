"""An edition's schedule as a reader reads it on the home page, in English and Spanish."""

from __future__ import annotations

import pytest

from newsletter.web.schedule import in_words


@pytest.mark.parametrize(("cron", "zone", "language", "expected"), [
    ("0 7 * * 1-5", "America/Bogota", "en", "every weekday at 07:00 Bogotá time"),
    ("0 7 * * 1-5", "America/Bogota", "es", "de lunes a viernes a las 07:00, hora de Bogotá"),
    ("0 7 * * mon-fri", "America/Bogota", "en", "every weekday at 07:00 Bogotá time"),
    ("0 7 * * *", "America/Mexico_City", "en", "every day at 07:00 Mexico City time"),
    ("0 7 * * *", "America/Mexico_City", "es", "todos los días a las 07:00, hora de Ciudad de México"),
    ("30 6 * * mon,wed,fri", "UTC", "en", "every Monday, Wednesday and Friday at 06:30 UTC"),
    ("30 6 * * 1,3,5", "UTC", "es", "los lunes, miércoles y viernes a las 06:30, hora UTC"),
    ("0 9 * * 0", "Europe/Madrid", "en", "every Sunday at 09:00 Madrid time"),
    ("0 9 * * 7", "Europe/Madrid", "es", "los domingos a las 09:00, hora de Madrid"),
    ("0 9 * * 6,0", "UTC", "es", "los sábados y domingos a las 09:00, hora UTC"),
    ("0 7,19 * * *", "UTC", "en", "every day at 07:00 and 19:00 UTC"),
    ("0 1,13 * * *", "UTC", "es", "todos los días a la 01:00 y a las 13:00, hora UTC"),
    ("0 8 1 * *", "UTC", "en", "on day 1 of every month at 08:00 UTC"),
    ("0 8 1,15 * *", "UTC", "es", "los días 1 y 15 de cada mes a las 08:00, hora UTC"),
    ("0 7 * * 0-6", "UTC", "en", "every day at 07:00 UTC"),
    ("0 7 * * 1-5", "America/Bogota", "pt", "every weekday at 07:00 Bogotá time"),
])
def test_common_schedules_read_as_sentences(cron: str, zone: str, language: str, expected: str) -> None:
    assert in_words(cron, zone, language) == expected


@pytest.mark.parametrize("cron", ["*/15 * * * *", "0 7 * 1-6 *", "0 7 1 * 1", "0 */2 * * *", "0 7 L * *"])
def test_shapes_too_subtle_to_word_are_quoted_not_misread(cron: str) -> None:
    assert in_words(cron, "America/Bogota", "en") == f"on the schedule “{cron}” Bogotá time"
    assert in_words(cron, "America/Bogota", "es") == f"según el calendario «{cron}», hora de Bogotá"
