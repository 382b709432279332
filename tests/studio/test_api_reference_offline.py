"""In a real browser cut off from every other host, `/docs` and `/redoc` render the API
reference, and the landing page at `/` leads to Studio and to it."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, expect

from tests.conftest import LiveServer

# What ReDoc's sidebar shows (an image from its maker's CDN) unless the page forbids it.
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
LOAD_IMAGE = """url => new Promise(done => {
    const image = new Image();
    image.onload = () => done("loaded");
    image.onerror = () => done("not loaded");
    image.src = url;
})"""


def offline(page: Page, server: LiveServer) -> list[str]:
    """Let the page reach only the server; what it tried to load elsewhere is returned."""
    elsewhere: list[str] = []
    own = urlsplit(server.url).netloc

    def only_the_server(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == own or url.startswith("data:"):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    page.route("**/*", only_the_server)
    return elsewhere


def test_swagger_ui_renders_with_no_other_host(page: Page, live_server: LiveServer) -> None:
    elsewhere = offline(page, live_server)
    page.goto(f"{live_server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tidings")
    expect(page.get_by_text("/inbound/segment", exact=True).first).to_be_visible()
    assert elsewhere == []


def test_redoc_renders_with_no_other_host(page: Page, live_server: LiveServer) -> None:
    elsewhere = offline(page, live_server)
    page.goto(f"{live_server.url}/redoc")
    expect(page.get_by_role("heading", name="Tidings", exact=False).first).to_be_visible()
    expect(page.get_by_text("/inbound/segment").first).to_be_attached()
    # The page's policy stops the logo's request before it leaves the browser: the route
    # above never sees it, now or when the sidebar asked for it.
    assert page.evaluate(LOAD_IMAGE, REDOCLY_LOGO) == "not loaded"
    assert elsewhere == []


def test_the_landing_page_leads_to_studio_and_the_docs(page: Page, live_server: LiveServer) -> None:
    elsewhere = offline(page, live_server)
    page.goto(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Tidings")).to_be_visible()
    page.get_by_role("link", name="API reference").click()
    page.wait_for_url(f"{live_server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tidings")
    page.go_back()
    page.get_by_role("link", name="Studio").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon == "/studio/static/favicon.svg"
    assert elsewhere == []
