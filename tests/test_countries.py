"""The country vocabulary: country tags in either language become one canonical slug."""

from __future__ import annotations

import pytest

from newsletter.config import load
from newsletter.countries import Countries


@pytest.mark.parametrize(
    "term, slug",
    [
        ("Colombia", "colombia"),
        ("Perú", "peru"),
        ("Peru", "peru"),
        ("PERU", "peru"),
        ("México", "mexico"),
        ("mexico", "mexico"),
        ("Haití", "haiti"),
        ("El Salvador", "el-salvador"),
        ("el-salvador", "el-salvador"),
        ("  El   Salvador ", "el-salvador"),
        ("República Dominicana", "dominican-republic"),
        ("Republica dominicana", "dominican-republic"),
        ("Dominican Republic", "dominican-republic"),
        ("Estados Unidos", "united-states"),
        ("EE.UU.", "united-states"),
        ("U.S.", "united-states"),
        ("The United States", "united-states"),
        ("Trinidad & Tobago", "trinidad-and-tobago"),
        ("Trinidad y Tobago", "trinidad-and-tobago"),
        ("España", "spain"),
        ("Canadá", "canada"),
        ("Brasil", "brazil"),
        ("Guinea-Bissau", "guinea-bissau"),
        ("Países Bajos", "netherlands"),
    ],
)
def test_country_names_in_english_and_spanish_match_one_slug(term: str, slug: str) -> None:
    assert Countries().match(term) == slug


@pytest.mark.parametrize(
    "term", ["Colombia Groups", "ELN", "Mexico Personalities", "US-Mexico Border", "News", "InSight Take", "", "  "]
)
def test_other_tags_are_not_countries(term: str) -> None:
    assert Countries().match(term) is None


def test_names_in_each_language() -> None:
    countries = Countries()
    assert countries.name("peru", "es") == "Perú"
    assert countries.name("peru", "en") == "Peru"
    assert countries.name("dominican-republic", "es") == "República Dominicana"
    assert countries.name("el-salvador", "en") == "El Salvador"
    # A language without its own names reads English.
    assert countries.name("mexico", "pt") == "Mexico"
    # A slug that is no longer in the vocabulary still reads as words.
    assert countries.name("atlantis-islands", "en") == "Atlantis Islands"


def test_config_adds_names_and_countries(config_file) -> None:
    path = config_file(collect={"countries": {"colombia": ["Colombie"], "kosovo": ["Kosovo", "Kósovo"]}})
    countries = Countries.from_config(load(path))
    assert countries.match("colombie") == "colombia"
    assert countries.match("Kosovo") == "kosovo"
    assert countries.match("KÓSOVO") == "kosovo"
    assert countries.name("kosovo", "es") == "Kosovo"
    assert countries.match("Colombia") == "colombia"
