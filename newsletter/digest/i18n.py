"""The digest's wording and dates in English and Spanish: one small catalogue per language.

Templates read every fixed phrase from `messages(language)`, so a translation is a new dict
here and no template changes. Languages without a catalogue read English.
"""

from __future__ import annotations

from datetime import date
from typing import Sequence

_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
           "octubre", "noviembre", "diciembre"),
}
_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "subject": "{{ count }} {{ 'brief' if count == 1 else 'briefs' }}"
                   "{% if countries %}: {{ countries }}{% else %} from {{ publication }}{% endif %}",
        "preheader_more": "and {n} more",
        "and": "and",
        "more_countries": "{n} more",
        "hello": "Hello,",
        "hello_name": "Hello {name},",
        # The intro mentions analysis only as far as the briefs carry one (see render.intro).
        "intro_one": "Here is the latest brief from {publication}, with an excerpt of its analysis.",
        "intro_one_plain": "Here is the latest brief from {publication}.",
        "intro_many": "Here are the latest {count} briefs from {publication}, each with an excerpt of its analysis.",
        "intro_many_plain": "Here are the latest {count} briefs from {publication}.",
        "intro_some_one": "Here are the latest {count} briefs from {publication}; one of them comes with an excerpt of its analysis.",
        "intro_some": "Here are the latest {count} briefs from {publication}; {analysed} of them come with an excerpt of their analysis.",
        "view_in_browser": "View in your browser",
        "by": "By",
        "analysis": "{publication} Analysis",
        "read_full": "Read the full brief",
        "links": "Links in this brief:",
        "licence": "These are excerpts of briefs published by {publication} under the {licence} licence.",
        "licence_text": "These are excerpts. Each brief was published by {publication} under the {licence} licence ({licence_url}); follow its link to read it in full.",
        "donate_title": "Independent analysis needs readers like you",
        "donate_body": "{publication} is funded by donations. If these briefs are useful to you, please help keep them free for everyone.",
        "donate_button": "Donate",
        "why": "You are receiving {edition} because you subscribed to it at {publication}.",
        "preferences": "Update your preferences",
        "unsubscribe": "Unsubscribe",
        "archive_note": "This is the web copy of a newsletter sent by {publication}.",
        "subscribe": "Subscribe",
        "sample_name": "Sample Reader",
    },
    "es": {
        "subject": "{{ count }} {{ 'nota' if count == 1 else 'notas' }}"
                   "{% if countries %}: {{ countries }}{% else %} de {{ publication }}{% endif %}",
        "preheader_more": "y {n} más",
        "and": "y",
        "more_countries": "{n} más",
        "hello": "Hola:",
        "hello_name": "Hola, {name}:",
        "intro_one": "Esta es la nota más reciente de {publication}, con un extracto de su análisis.",
        "intro_one_plain": "Esta es la nota más reciente de {publication}.",
        "intro_many": "Estas son las {count} notas más recientes de {publication}, cada una con un extracto de su análisis.",
        "intro_many_plain": "Estas son las {count} notas más recientes de {publication}.",
        "intro_some_one": "Estas son las {count} notas más recientes de {publication}; una de ellas trae un extracto de su análisis.",
        "intro_some": "Estas son las {count} notas más recientes de {publication}; {analysed} de ellas traen un extracto de su análisis.",
        "view_in_browser": "Ver en el navegador",
        "by": "Por",
        "analysis": "Análisis de {publication}",
        "read_full": "Leer la nota completa",
        "links": "Enlaces de esta nota:",
        "licence": "Estos son extractos de notas publicadas por {publication} con la licencia {licence}.",
        "licence_text": "Estos son extractos. Cada nota fue publicada por {publication} con la licencia {licence} ({licence_url}); siga su enlace para leerla completa.",
        "donate_title": "El análisis independiente necesita lectores como usted",
        "donate_body": "{publication} se financia con donaciones. Si estas notas le son útiles, ayúdenos a mantenerlas gratuitas para todos.",
        "donate_button": "Donar",
        "why": "Recibe {edition} porque se suscribió en {publication}.",
        "preferences": "Cambiar sus preferencias",
        "unsubscribe": "Cancelar la suscripción",
        "archive_note": "Esta es la copia web de un boletín enviado por {publication}.",
        "subscribe": "Suscribirse",
        "sample_name": "Lector de ejemplo",
    },
}


def messages(language: str) -> dict[str, str]:
    return MESSAGES.get(language, MESSAGES["en"])


def _language(language: str) -> str:
    return language if language in _MONTHS else "en"


def long_date(day: date, language: str) -> str:
    """'Thursday, 5 March 2026' / 'jueves, 5 de marzo de 2026'."""
    lang = _language(language)
    weekday, month = _WEEKDAYS[lang][day.weekday()], _MONTHS[lang][day.month - 1]
    if lang == "es":
        return f"{weekday}, {day.day} de {month} de {day.year}"
    return f"{weekday}, {day.day} {month} {day.year}"


def short_date(day: date, language: str) -> str:
    """'5 Mar 2026' / '5 mar 2026'."""
    lang = _language(language)
    month = _MONTHS[lang][day.month - 1]
    # Spanish abbreviates September as "sept", the rest by their first three letters.
    abbreviation = "sept" if (lang == "es" and day.month == 9) else month[:3]
    return f"{day.day} {abbreviation} {day.year}"


def join(items: Sequence[str], language: str, *, limit: int = 0) -> str:
    """'A, B and C' / 'A, B y C'; past `limit` items: 'A, B, C and 2 more'."""
    words = messages(language)
    items = list(items)
    if limit and len(items) > limit:
        rest = len(items) - limit
        items = items[:limit] + [words["more_countries"].format(n=rest)]
    if len(items) <= 1:
        return "".join(items)
    conjunction = words["and"]
    # Spanish "y" becomes "e" before a word starting with an /i/ sound.
    if conjunction == "y" and items[-1][:1].lower() in ("i", "í") and not items[-1][:2].lower() in ("ia", "ie", "io", "iu"):
        conjunction = "e"
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]
