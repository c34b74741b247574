"""Hostile HTML in, safe HTML out: an allow-list sanitiser (nh3) plus absolute URLs.

Every brief's HTML passes through `clean_html` when collected; feeds and digests may pass
it again before output (it is idempotent), so nothing stored earlier can smuggle in
script, event handlers, `javascript:` URLs, iframes, forms or XML-forbidden characters.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "cite", "code", "em", "figcaption", "figure", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "q", "s", "small", "strong", "sub",
    "sup", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "abbr": {"title"},
    "q": {"cite"},
    "blockquote": {"cite"},
}
URL_ATTRIBUTES = {("a", "href"), ("img", "src"), ("q", "cite"), ("blockquote", "cite")}
URL_SCHEMES = {"http", "https", "mailto"}
# Dropped with their content, not just unwrapped.
DROP_WITH_CONTENT = {"script", "style", "iframe", "noscript", "template", "object", "embed", "form",
                     "button", "select", "textarea", "svg", "math", "video", "audio"}

# Characters XML 1.0 forbids (C0 controls except tab/newline/CR, surrogates, U+FFFE/U+FFFF).
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """Remove characters that XML 1.0 forbids, which would make a feed unparseable."""
    return _XML_FORBIDDEN.sub("", text)


def absolute_url(url: str, base_url: str) -> str | None:
    """`url` resolved against `base_url`; None when it is not http(s) or mailto."""
    url = url.strip()
    if not url:
        return None
    resolved = urljoin(base_url, url)
    scheme = urlsplit(resolved).scheme.lower()
    return resolved if scheme in URL_SCHEMES else None


def clean_html(fragment: str, base_url: str) -> str:
    """Sanitise an HTML fragment with the allow-list and make every URL absolute."""

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if (tag, attribute) in URL_ATTRIBUTES:
            return absolute_url(value, base_url)
        if attribute in ("width", "height"):
            return value if value.isdigit() else None
        return value

    import nh3  # here, not at the top: a send worker calls only clean_text, mostly on text without markup

    return nh3.clean(
        xml_safe(fragment),
        tags=ALLOWED_TAGS,
        clean_content_tags=DROP_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=keep,
        url_schemes=URL_SCHEMES,
        strip_comments=True,
        link_rel="noopener noreferrer",
    ).strip()


def clean_text(text: str) -> str:
    """A one-line plain-text value (title, author): no markup, no CR/LF, no control characters.

    Entities are decoded: the result is text, which every output escapes for its own format.
    """
    if "<" in text:
        import nh3

        text = nh3.clean(text, tags=set(), clean_content_tags=DROP_WITH_CONTENT)
    return " ".join(xml_safe(html.unescape(text)).split())
