"""What a subscriber reads in the digest: subject, items, attribution, donate block, footer, size."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.config import Config
from newsletter.digest import MailingContent, MessageFactory, render_mailing
from newsletter.digest.render import RenderedMailing
from newsletter.errors import RenderError
from newsletter.recipients import Recipient
from tests.support.digest import CREATED, brief, briefs, digest_config


@pytest.fixture
def cfg(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "digest-test-key-0123456789abcdefghijkl")
    return digest_config(tmp_path, sqlite_url)


def render(cfg: Config, items, edition: str = "daily-en", **edition_changes) -> RenderedMailing:
    from dataclasses import replace

    return render_mailing(cfg, replace(cfg.edition(edition), **edition_changes), items, mailing_id=42,
                          created_at=CREATED)


def personal(cfg: Config, rendered: RenderedMailing, language: str = "en") -> tuple[str, str]:
    mailing = MailingContent(42, "daily-en", language, rendered.subject, rendered.preheader, rendered.html,
                             rendered.text, rendered.content_hash, CREATED)
    return MessageFactory(cfg, mailing).parts(Recipient(7, "ana@example.com", "Ana"))


def test_subject_counts_the_briefs_and_names_their_countries(cfg: Config) -> None:
    items = [brief(1, countries=("colombia",)), brief(2, countries=("mexico", "colombia")),
             brief(3, countries=("venezuela",))]
    assert render(cfg, items).subject == "3 briefs: Colombia, Mexico and Venezuela"
    assert render(cfg, items[:1]).subject == "1 brief: Colombia"
    spanish = render(cfg, [brief(1, countries=("mexico",), language="es"), brief(2, countries=("peru",))], "weekly-es")
    assert spanish.subject == "2 notas: México y Perú"


def test_subject_template_of_the_edition_and_no_line_break_ever(cfg: Config) -> None:
    rendered = render(cfg, briefs(2), subject="{{ edition }}, {{ date }}: {{ count }} from {{ publication }}")
    assert rendered.subject == "Crime Briefs Daily, Thursday, 5 March 2026: 2 from Crime Briefs Test"
    hostile = render(cfg, briefs(2), subject="{{ count }}\r\nBcc: victim@example.com\n")
    assert "\n" not in hostile.subject and "\r" not in hostile.subject
    with pytest.raises(RenderError, match="editions.subject"):
        render(cfg, briefs(2), subject="{{ nonsense }}")


def test_spanish_wording_and_dates(cfg: Config) -> None:
    rendered = render(cfg, [brief(1, language="es", title="Decomiso récord en el puerto")], "weekly-es")
    html, text = personal(cfg, rendered, "es")
    for part in (html, text):
        assert "jueves, 5 de marzo de 2026" in part
        assert "Leer la nota completa" in part
        assert "Hola, Ana:" in part
        assert "Cancelar la suscripción" in part
    assert "5 mar 2026" in text and "Por Ana Ruiz y Ben Ode" in text


def test_every_item_links_the_original_at_top_and_bottom_with_byline_date_lede_and_excerpt(cfg: Config) -> None:
    item = brief(1)
    html, text = personal(cfg, render(cfg, [item], excerpt_chars=300))
    assert html.count(f'href="{item.url}"') >= 2
    # The text part gives the original once, as link [1] at the end of the item.
    assert text.count(item.url) == 1
    assert re.search(r'<a href="https://briefs.example.org/news/brief-number-1/"[^>]*>Record cocaine seizure', html)
    assert "Read the full brief" in html and "Read the full brief: [1]" in text and f"\n[1] {item.url}\n" in text
    for part in (html, text):
        assert "By Ana Ruiz and Ben Ode · Crime Briefs Test" in part
        assert "5 Mar 2026" in part
        assert "Authorities in Mexico seized 3 tonnes" in part
        # The analysis excerpt: whole sentences, cut with an ellipsis.
        assert "corruption inside ports allows loads to pass inspections that look rigorous on paper. …" in " ".join(part.split())
        assert "Past cases suggest" not in part
    # A relative link in the lede was made absolute.
    assert 'href="https://briefs.example.org/news/arrests-3/"' in html


def test_brief_without_analysis_shows_its_lede_as_the_excerpt(cfg: Config) -> None:
    html, text = personal(cfg, render(cfg, [brief(1, analysis="")]))
    assert "Authorities in Mexico seized" in text
    assert "Crime Briefs Test Analysis".upper() not in text
    assert "Crime Briefs Test Analysis" not in html


def test_licence_donate_and_footer(cfg: Config) -> None:
    html, text = personal(cfg, render(cfg, briefs(2)))
    donate = "https://briefs.example.org/donate/?utm_source=newsletter&utm_campaign=digest"
    assert f'href="{donate.replace("&", "&amp;")}"' in html
    assert f"Donate: {donate}" in " ".join(text.split())
    # The licence is named as a link to its terms.
    assert '<a href="https://creativecommons.org/licenses/by-nc/4.0/">CC BY-NC 4.0</a>' in html
    assert "CC BY-NC 4.0 licence (https://creativecommons.org/licenses/by-nc/4.0/)" in " ".join(text.split())
    for part in (html, text):
        assert "excerpts" in part
        assert "because you subscribed" in part
        assert "1 Test Street, Testville" in part
        assert "https://news.example.org/archive/42" in part
        assert "https://news.example.org/unsubscribe/" in part
        assert "https://news.example.org/preferences/" in part
    assert "Crime Briefs Test</a>" in html  # the publisher's name heads the digest


def test_html_has_no_comments_no_remote_fonts_and_the_text_carries_every_link(cfg: Config) -> None:
    rendered = render(cfg, briefs(4))
    assert "%%nl:unsubscribe_url_html%%" in rendered.html and "%%nl:unsubscribe_url%%" in rendered.text
    html, text = personal(cfg, rendered)
    # Only Outlook's conditional comments remain; the template's own comments are gone.
    assert all(c.startswith(("[if", "<![endif")) for c in re.findall(r"<!--(?!>)(.{0,8})", html))
    assert "fonts.googleapis" not in html and "<link" not in html
    links = set(re.findall(r'href="([^"]+)"', html))
    assert len(links) > 6
    for link in links:
        assert link.replace("&amp;", "&") in text, link


def test_rendering_is_deterministic_and_the_hash_follows_the_content(cfg: Config) -> None:
    first, again = render(cfg, briefs(3)), render(cfg, briefs(3))
    assert first == again
    assert render(cfg, briefs(4)).content_hash != first.content_hash


def test_fifteen_long_briefs_stay_under_gmail_clipping(cfg: Config) -> None:
    long_lede = "".join(f"<p>{brief(i).lede}</p>" for i in range(1, 4))
    long_analysis = "".join(brief(i).analysis for i in range(1, 5))
    items = briefs(15, lede=long_lede, analysis=long_analysis,
                   authors=("Maria Fernanda Castellanos", "Jonathan Whitmore-Rivera"))
    rendered = render(cfg, items)
    html, _ = personal(cfg, rendered)
    assert len(html.encode()) < 90_000, len(html.encode())
    assert html.count("Read the full brief") == 15


def test_operators_override_a_template_beside_the_config(cfg: Config) -> None:
    folder = cfg.root / "templates" / "email"
    folder.mkdir(parents=True)
    (folder / "digest.txt.j2").write_text("Custom {{ count }}{% for i in items %} {{ i.url }}{% endfor %}\n"
                                          .replace("{{ count }}", "{{ items|length }}"))
    rendered = render(cfg, briefs(2))
    assert rendered.text.startswith("Custom 2 https://briefs.example.org/news/brief-number-1/")
    assert "<mjml" not in rendered.html and "Record cocaine seizure" in rendered.html


def test_a_configured_logo_heads_the_digest_with_the_publishers_name_as_alt(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "digest-test-key-0123456789abcdefghijkl")
    with_logo = digest_config(tmp_path, sqlite_url, logo_url="https://briefs.example.org/logo.png")
    html = render(with_logo, briefs(1)).html
    assert re.search(r'<img src="https://briefs.example.org/logo.png" alt="Crime Briefs Test"', html)
    assert html.index("logo.png") < html.index('href="https://briefs.example.org/news/brief-number-1/"')


@pytest.mark.parametrize("edition, expected", [
    ("daily-en", {
        (1, 1): "Here is the latest brief from Crime Briefs Test, with an excerpt of its analysis.",
        (1, 0): "Here is the latest brief from Crime Briefs Test.",
        (3, 3): "Here are the latest 3 briefs from Crime Briefs Test, each with an excerpt of its analysis.",
        (3, 0): "Here are the latest 3 briefs from Crime Briefs Test.",
        (5, 2): "Here are the latest 5 briefs from Crime Briefs Test; 2 of them come with an excerpt of their analysis.",
        (5, 1): "Here are the latest 5 briefs from Crime Briefs Test; one of them comes with an excerpt of its analysis.",
    }),
    ("weekly-es", {
        (1, 1): "Esta es la nota más reciente de Crime Briefs Test, con un extracto de su análisis.",
        (1, 0): "Esta es la nota más reciente de Crime Briefs Test.",
        (3, 3): "Estas son las 3 notas más recientes de Crime Briefs Test, cada una con un extracto de su análisis.",
        (3, 0): "Estas son las 3 notas más recientes de Crime Briefs Test.",
        (5, 2): "Estas son las 5 notas más recientes de Crime Briefs Test; 2 de ellas traen un extracto de su análisis.",
        (5, 1): "Estas son las 5 notas más recientes de Crime Briefs Test; una de ellas trae un extracto de su análisis.",
    }),
])
def test_the_intro_promises_analysis_only_as_far_as_the_briefs_carry_one(cfg: Config, edition: str,
                                                                          expected: dict) -> None:
    language = cfg.edition(edition).language
    for (count, analysed), intro in expected.items():
        items = [brief(i, language=language, analysis=brief(i).analysis if i <= analysed else "")
                 for i in range(1, count + 1)]
        html, text = personal(cfg, render(cfg, items, edition), language)
        assert intro in html and intro in " ".join(text.split()), (count, analysed)


def test_the_text_part_fits_78_columns_and_gives_each_link_once_per_item(cfg: Config) -> None:
    long_lede = ('<p>A <a href="/news/a-related-investigation/">related investigation</a> and '
                 '<a href="https://elsewhere.example.net/report">a report</a> explain why '
                 + "the seizure matters for the region and its ports " * 6 + '.</p>')
    items = [brief(1, title="A very long title about " + "port corruption and cocaine seizures " * 4,
                   authors=("Ana María Ruiz de la Fuente", "Benedicto Odeón Villanueva", "Carla Quintero"),
                   countries=("colombia", "venezuela", "ecuador", "honduras", "guatemala")),
             brief(2, lede=long_lede, analysis=""), brief(3)]
    rendered = render(cfg, items)
    _, text = personal(cfg, rendered)
    for line in text.splitlines():
        # Only a URL too long for a line stands alone past 78 columns.
        assert len(line) <= 78 or re.fullmatch(r"(\[\d+\] )?https://\S+", line), line
    sections = text.split("-" * 72)[1:4]
    assert len(sections) == 3
    for item, section in zip(items, sections):
        urls = re.findall(r"https://\S+", section)
        assert urls.count(item.url) == 1 and len(urls) == len(set(urls)), section
        assert re.search(rf"^\[1\] {re.escape(item.url)}$", section, re.M)
    assert re.search(r"^\[2\] https://briefs\.example\.org/news/a-related-investigation/$", sections[1], re.M)
    assert re.search(r"^\[3\] https://elsewhere\.example\.net/report$", sections[1], re.M)


def test_the_licence_is_a_link_to_its_terms_in_the_readers_language(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "digest-test-key-0123456789abcdefghijkl")
    spanish = "https://creativecommons.org/licenses/by-nc/4.0/legalcode.es"
    cfg = digest_config(tmp_path, sqlite_url, licence_urls={"es": spanish})
    html, text = personal(cfg, render(cfg, [brief(1, language="es")], "weekly-es"), "es")
    assert f'con la licencia <a href="{spanish}">CC BY-NC 4.0</a>.' in html
    assert f"con la licencia CC BY-NC 4.0 ({spanish})" in " ".join(text.split())
    assert "by-nc/4.0/\"" not in html and "by-nc/4.0/)" not in text
    # Languages without their own keep `licence_url`.
    html, text = personal(cfg, render(cfg, [brief(1)]))
    assert 'under the <a href="https://creativecommons.org/licenses/by-nc/4.0/">CC BY-NC 4.0</a> licence.' in html
    from newsletter.errors import ConfigError

    with pytest.raises(ConfigError, match=r"publication\.licence_urls = .*expected a table of language codes"):
        digest_config(tmp_path, sqlite_url, licence_urls={"es": "legalcode.es"})


def test_the_preheader_is_hidden_body_text_not_white_on_white(cfg: Config) -> None:
    rendered = render(cfg, briefs(2))
    html, _ = personal(cfg, rendered)
    hidden = re.search(r'<div class="preheader" style="([^"]*)">([^<]*)</div>', html)
    assert hidden and hidden.group(2) == rendered.preheader
    style = hidden.group(1)
    assert "display:none" in style and "mso-hide:all" in style
    assert "color:#1f2328" in style and "#fff" not in style and "font-size:1px" not in style and "opacity" not in style
    # It comes first in the body, where inbox lists look for it.
    assert html.index('class="preheader"') < html.index("Crime Briefs Daily")
