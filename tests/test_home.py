"""`GET /` leads to Studio and the API reference; `/docs` and `/redoc` load nothing from
another host; the favicon is served from the package."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from tidings import __version__


class _Urls(HTMLParser):
    """Every URL a page loads or links to: src and href attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.urls.append((tag, value))


def urls_of(html: str) -> list[tuple[str, str]]:
    parser = _Urls()
    parser.feed(html)
    return parser.urls


CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".ico": ("image/svg+xml",),
    ".svg": ("image/svg+xml",),
}


@pytest.mark.parametrize(("page", "assets"), [("/docs", 3), ("/redoc", 2)])
def test_the_api_reference_loads_everything_from_tidings(
    client: TestClient, page: str, assets: int
) -> None:
    answer = client.get(page)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert "://" not in html  # no absolute URL at all: nothing from a CDN, fonts included
    assert "'/openapi.json'" in html or '"/openapi.json"' in html
    urls = urls_of(html)
    assert len(urls) == assets, urls
    for _tag, url in urls:
        assert url.startswith("/")
        assert not url.startswith("//")
        asset = client.get(urljoin(f"http://testserver{page}", url))
        assert asset.status_code == 200, url
        suffix = "." + urlsplit(url).path.rsplit(".", 1)[-1]
        assert asset.headers["content-type"].split(";")[0] in CONTENT_TYPES[suffix], url
        assert len(asset.content) > 100
    scripts = [url for tag, url in urls if tag == "script"]
    assert scripts
    for script in scripts:
        assert client.get(script).text.lstrip().startswith("/*!")  # the bundle, not a page


def test_the_api_reference_is_not_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/", "/docs", "/redoc", "/favicon.ico"):
        assert path not in paths


def test_a_browser_at_the_root_gets_a_page_leading_to_studio_and_the_docs(
    client: TestClient,
) -> None:
    answer = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert "://" not in answer.text
    links = {url for tag, url in urls_of(answer.text) if tag == "a"}
    assert {"/studio/", "/docs", "/redoc", "/openapi.json"} <= links
    for tag, url in urls_of(answer.text):
        followed = client.get(url, follow_redirects=True)
        assert followed.status_code == 200, (tag, url)
    studio = client.get("/studio/", follow_redirects=True)
    assert "Sign in" in studio.text


def test_a_json_client_at_the_root_gets_the_links(client: TestClient) -> None:
    answer = client.get("/", headers={"Accept": "application/json"})
    assert answer.status_code == 200
    assert answer.json() == {
        "name": "Tidings",
        "version": __version__,
        "links": {
            "studio": "/studio/",
            "docs": "/docs",
            "redoc": "/redoc",
            "openapi": "/openapi.json",
            "health": "/health",
        },
    }
    assert client.get("/").json()["links"]["docs"] == "/docs"  # no Accept header at all


def test_the_favicon_is_the_package_svg(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg ")
    studio_icon = client.get("/studio/static/favicon.svg")
    assert studio_icon.status_code == 200
    assert studio_icon.content == icon.content
    sign_in = client.get("/studio/sign-in")
    assert ("link", "/studio/static/favicon.svg") in urls_of(sign_in.text)


def test_every_reference_in_the_openapi_document_resolves(client: TestClient) -> None:
    """A body schema's own `$defs` would point at the document's root, where ReDoc finds
    nothing and refuses the whole reference: they are moved to the components."""
    document = client.get("/openapi.json").json()

    def references(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [ref for value in node.values() for ref in references(value)]
        if isinstance(node, list):
            return [ref for item in node for ref in references(item)]
        return []

    refs = references(document)
    assert "#/components/schemas/Trigger" in refs  # the automation body's nested model
    assert "$defs" not in str(document)
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in document["components"]["schemas"]
