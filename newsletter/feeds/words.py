"""The words a feed shows around the briefs, in English and Spanish.

A feed speaks its own language (the `xml:lang` it declares); any language other than
Spanish gets the English wording, since every publisher configured so far writes in one
of the two.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Words:
    # Feed metadata (plain text).
    title: str  # {publisher}
    country_title: str  # {publisher} {country}
    subtitle: str  # {publisher}
    country_subtitle: str  # {publisher} {country}
    archive_title: str  # {title} {page}
    rights: str  # {publisher} {licence} {licence_url}
    # Entry content (HTML; the placeholders are filled with escaped values).
    excerpt_notice: str  # {url} {title} {publisher}
    byline: str  # {authors} {publisher}
    byline_publisher_only: str  # {publisher}
    analysis_heading: str  # {publisher}
    read_original: str  # {url} {publisher}
    licence_notice: str  # {authors} {publisher} {licence_url} {licence}
    # The plain-text summary's attribution.
    summary_credit: str  # {byline} {url} {publisher} {licence} {licence_url}
    conjunction: str  # joins the last two authors


ENGLISH = Words(
    title="{publisher}: news briefs",
    country_title="{publisher}: {country}",
    subtitle="News briefs with analysis from {publisher}",
    country_subtitle="News briefs with analysis on {country} from {publisher}",
    archive_title="{title} (archive, part {page})",
    rights="© {publisher}. Licensed under {licence}: {licence_url}",
    excerpt_notice='This is an excerpt of <a href="{url}">{title}</a>, first published by {publisher}.',
    byline="By {authors} for {publisher}",
    byline_publisher_only="By {publisher}",
    analysis_heading="{publisher} Analysis",
    read_original='Read the whole brief at <a href="{url}">{publisher}</a>.',
    licence_notice=(
        'Excerpt of the original by {authors}, © {publisher}, used under the '
        '<a href="{licence_url}">{licence}</a> licence.'
    ),
    summary_credit=(
        "{byline}. This is an excerpt; read the original at {url}. © {publisher}, "
        "licensed under {licence}: {licence_url}"
    ),
    conjunction="and",
)

SPANISH = Words(
    title="{publisher}: noticias",
    country_title="{publisher}: {country}",
    subtitle="Noticias con análisis de {publisher}",
    country_subtitle="Noticias con análisis sobre {country} de {publisher}",
    archive_title="{title} (archivo, parte {page})",
    rights="© {publisher}. Bajo la licencia {licence}: {licence_url}",
    excerpt_notice='Este es un extracto de <a href="{url}">{title}</a>, publicado originalmente por {publisher}.',
    byline="Por {authors} para {publisher}",
    byline_publisher_only="Por {publisher}",
    analysis_heading="Análisis de {publisher}",
    read_original='Lea el artículo completo en <a href="{url}">{publisher}</a>.',
    licence_notice=(
        'Extracto del original de {authors}, © {publisher}, usado bajo la licencia '
        '<a href="{licence_url}">{licence}</a>.'
    ),
    summary_credit=(
        "{byline}. Esto es un extracto; lea el original en {url}. © {publisher}, "
        "bajo la licencia {licence}: {licence_url}"
    ),
    conjunction="y",
)


def words(language: str) -> Words:
    return SPANISH if language == "es" else ENGLISH


def join_names(names: list[str], language: str) -> str:
    """'A', 'A and B', 'A, B and C' (with 'y' in Spanish)."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + f" {words(language).conjunction} " + names[-1]
