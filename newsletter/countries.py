"""The country vocabulary: canonical English slugs with names in English and Spanish.

Publishers tag briefs with countries mixed among other tags ("Colombia", "ELN",
"Mexico Personalities"), in either language, with or without accents. `match` tells a
country tag from the rest and gives its canonical slug ("colombia", "el-salvador"),
so feeds, digests and subscriber preferences agree on one name per country whatever
the source's spelling. `[collect].countries` in the config adds names (or countries).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Mapping, Sequence

from newsletter.config import Config

# slug, English name, Spanish name, other spellings (either language). The names are the
# display names; every one of them, accented or not, is also matched.
_VOCABULARY: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # South America
    ("argentina", "Argentina", "Argentina", ()),
    ("bolivia", "Bolivia", "Bolivia", ()),
    ("brazil", "Brazil", "Brasil", ()),
    ("chile", "Chile", "Chile", ()),
    ("colombia", "Colombia", "Colombia", ()),
    ("ecuador", "Ecuador", "Ecuador", ()),
    ("french-guiana", "French Guiana", "Guayana Francesa", ()),
    ("guyana", "Guyana", "Guyana", ()),
    ("paraguay", "Paraguay", "Paraguay", ()),
    ("peru", "Peru", "Perú", ()),
    ("suriname", "Suriname", "Surinam", ()),
    ("uruguay", "Uruguay", "Uruguay", ()),
    ("venezuela", "Venezuela", "Venezuela", ()),
    # Central America and Mexico
    ("belize", "Belize", "Belice", ()),
    ("costa-rica", "Costa Rica", "Costa Rica", ()),
    ("el-salvador", "El Salvador", "El Salvador", ()),
    ("guatemala", "Guatemala", "Guatemala", ()),
    ("honduras", "Honduras", "Honduras", ()),
    ("mexico", "Mexico", "México", ("Méjico",)),
    ("nicaragua", "Nicaragua", "Nicaragua", ()),
    ("panama", "Panama", "Panamá", ()),
    # The Caribbean
    ("anguilla", "Anguilla", "Anguila", ()),
    ("antigua-and-barbuda", "Antigua and Barbuda", "Antigua y Barbuda", ()),
    ("aruba", "Aruba", "Aruba", ()),
    ("bahamas", "The Bahamas", "Bahamas", ("Las Bahamas",)),
    ("barbados", "Barbados", "Barbados", ()),
    ("bermuda", "Bermuda", "Bermudas", ()),
    ("bonaire", "Bonaire", "Bonaire", ()),
    ("british-virgin-islands", "British Virgin Islands", "Islas Vírgenes Británicas", ()),
    ("cayman-islands", "Cayman Islands", "Islas Caimán", ()),
    ("cuba", "Cuba", "Cuba", ()),
    ("curacao", "Curaçao", "Curazao", ()),
    ("dominica", "Dominica", "Dominica", ()),
    ("dominican-republic", "Dominican Republic", "República Dominicana", ("Dominican Rep.",)),
    ("grenada", "Grenada", "Granada", ()),
    ("guadeloupe", "Guadeloupe", "Guadalupe", ()),
    ("haiti", "Haiti", "Haití", ()),
    ("jamaica", "Jamaica", "Jamaica", ()),
    ("martinique", "Martinique", "Martinica", ()),
    ("montserrat", "Montserrat", "Montserrat", ()),
    ("puerto-rico", "Puerto Rico", "Puerto Rico", ()),
    ("saint-kitts-and-nevis", "Saint Kitts and Nevis", "San Cristóbal y Nieves", ("St. Kitts and Nevis",)),
    ("saint-lucia", "Saint Lucia", "Santa Lucía", ("St. Lucia",)),
    ("saint-martin", "Saint Martin", "San Martín", ("Sint Maarten", "St. Martin")),
    ("saint-vincent-and-the-grenadines", "Saint Vincent and the Grenadines", "San Vicente y las Granadinas",
     ("St. Vincent and the Grenadines",)),
    ("trinidad-and-tobago", "Trinidad and Tobago", "Trinidad y Tobago", ("Trinidad & Tobago",)),
    ("turks-and-caicos", "Turks and Caicos Islands", "Islas Turcas y Caicos", ("Turks and Caicos",)),
    ("us-virgin-islands", "US Virgin Islands", "Islas Vírgenes de los Estados Unidos", ()),
    # North America
    ("canada", "Canada", "Canadá", ()),
    ("united-states", "United States", "Estados Unidos",
     ("US", "U.S.", "USA", "U.S.A.", "United States of America", "EEUU", "EE.UU.", "EE. UU.",
      "Estados Unidos de América")),
    # Europe: cocaine routes, money laundering, brokers
    ("albania", "Albania", "Albania", ()),
    ("belgium", "Belgium", "Bélgica", ()),
    ("france", "France", "Francia", ()),
    ("germany", "Germany", "Alemania", ()),
    ("greece", "Greece", "Grecia", ()),
    ("ireland", "Ireland", "Irlanda", ()),
    ("italy", "Italy", "Italia", ()),
    ("montenegro", "Montenegro", "Montenegro", ()),
    ("netherlands", "Netherlands", "Países Bajos", ("The Netherlands", "Holland", "Holanda")),
    ("portugal", "Portugal", "Portugal", ()),
    ("russia", "Russia", "Rusia", ()),
    ("serbia", "Serbia", "Serbia", ()),
    ("spain", "Spain", "España", ()),
    ("switzerland", "Switzerland", "Suiza", ()),
    ("turkey", "Turkey", "Turquía", ("Türkiye",)),
    ("ukraine", "Ukraine", "Ucrania", ()),
    ("united-kingdom", "United Kingdom", "Reino Unido", ("UK", "U.K.", "Britain", "Great Britain", "Gran Bretaña")),
    # Africa: transit for South American cocaine
    ("cape-verde", "Cape Verde", "Cabo Verde", ()),
    ("ghana", "Ghana", "Ghana", ()),
    ("guinea", "Guinea", "Guinea", ()),
    ("guinea-bissau", "Guinea-Bissau", "Guinea-Bisáu", ("Guinea Bissau",)),
    ("morocco", "Morocco", "Marruecos", ()),
    ("nigeria", "Nigeria", "Nigeria", ()),
    ("south-africa", "South Africa", "Sudáfrica", ()),
    # Asia, the Middle East and Oceania: precursor chemicals, money laundering, markets
    ("afghanistan", "Afghanistan", "Afganistán", ()),
    ("australia", "Australia", "Australia", ()),
    ("china", "China", "China", ()),
    ("hong-kong", "Hong Kong", "Hong Kong", ()),
    ("india", "India", "India", ()),
    ("indonesia", "Indonesia", "Indonesia", ()),
    ("iran", "Iran", "Irán", ()),
    ("israel", "Israel", "Israel", ()),
    ("japan", "Japan", "Japón", ()),
    ("lebanon", "Lebanon", "Líbano", ()),
    ("myanmar", "Myanmar", "Myanmar", ("Burma", "Birmania")),
    ("new-zealand", "New Zealand", "Nueva Zelanda", ()),
    ("pakistan", "Pakistan", "Pakistán", ()),
    ("philippines", "Philippines", "Filipinas", ("The Philippines",)),
    ("syria", "Syria", "Siria", ()),
    ("taiwan", "Taiwan", "Taiwán", ()),
    ("thailand", "Thailand", "Tailandia", ()),
    ("united-arab-emirates", "United Arab Emirates", "Emiratos Árabes Unidos", ("UAE", "EAU")),
    ("vietnam", "Vietnam", "Vietnam", ("Viet Nam",)),
)

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


@functools.lru_cache(maxsize=8192)
def normalise(term: str) -> str:
    """The matching key of a name: no accents, no case, no spaces or punctuation ("El-Salvador" = "el salvador")."""
    decomposed = unicodedata.normalize("NFKD", term.replace("&", " and "))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return _NOT_ALNUM.sub("", bare)


class Countries:
    """Country names to canonical slugs and back.

    `extra` maps a slug to more names; a slug the vocabulary lacks becomes a new country
    named by its first extra name in every language.
    """

    def __init__(self, extra: Mapping[str, Sequence[str]] | None = None) -> None:
        self._names: dict[str, dict[str, str]] = {}
        self._index: dict[str, str] = {}
        for slug, english, spanish, others in _VOCABULARY:
            self._names[slug] = {"en": english, "es": spanish}
            for term in (slug, english, spanish, *others):
                self._index[normalise(term)] = slug
        for slug, names in (extra or {}).items():
            if slug not in self._names and names:
                self._names[slug] = {"en": names[0], "es": names[0]}
            for term in (slug, *names):
                # A configured name wins over the built-in vocabulary: the operator knows their tags.
                self._index[normalise(term)] = slug

    @classmethod
    def from_config(cls, config: Config) -> "Countries":
        return cls(config.collect.countries)

    def match(self, term: str) -> str | None:
        """The canonical slug when `term` names a country, else None."""
        key = normalise(term)
        if not key:
            return None
        slug = self._index.get(key)
        if slug is None and key.startswith("the"):
            slug = self._index.get(key[3:])
        return slug

    def name(self, slug: str, language: str) -> str:
        """The display name in `language` (English for languages other than Spanish).

        A slug outside the vocabulary (e.g. one dropped from the config since it was stored)
        reads as its words capitalised, so old briefs still render.
        """
        names = self._names.get(slug)
        if names is None:
            return " ".join(word.capitalize() for word in slug.split("-"))
        return names.get(language, names["en"])
