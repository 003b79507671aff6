"""The web page (GET /, /app.js, /app.css): each asset served with its
type, the security headers and a Content-Security-Policy that lets the
page load its own script and style and talk to its own origin only; the
page names only same-origin assets; its script never turns a string
into HTML or code (mail is hostile); unknown paths stay 404."""
import re

import pytest

from conftest import REPO
from test_http import SECURITY_HEADERS, get, web  # noqa: F401 (fixture)

ASSETS = {
    "/": ("text/html; charset=utf-8", b"<!DOCTYPE html>"),
    "/app.js": ("text/javascript; charset=utf-8", b"use strict"),
    "/app.css": ("text/css; charset=utf-8", b"{"),
}
PAGE_FILES = {"/": "web/index.html", "/app.js": "web/app.js",
              "/app.css": "web/app.css"}


def csp(headers):
    """The Content-Security-Policy's directives: {name: [sources]}."""
    out = {}
    for part in headers["content-security-policy"].split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@pytest.mark.parametrize("path", sorted(ASSETS))
def test_asset_type_headers_and_csp(web, path):
    status, headers, body = get(web, path)
    assert status == 200
    ctype, marker = ASSETS[path]
    assert headers["content-type"] == ctype
    assert marker in body
    # What is served is the file in the repository, byte for byte.
    assert body == (REPO / PAGE_FILES[path]).read_bytes()
    for name, value in SECURITY_HEADERS.items():
        if name != "content-security-policy":
            assert value in headers[name], name
    policy = csp(headers)
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    for d in ("frame-ancestors", "base-uri", "form-action"):
        assert policy[d] == ["'none'"], d
    everything = " ".join(headers["content-security-policy"].split())
    for loose in ("unsafe-inline", "unsafe-eval", "*", "http:", "https:",
                  "data:", "blob:"):
        assert loose not in everything.split(), loose
    assert headers["content-security-policy"].count(
        "Content-Security-Policy") == 0
    status, headers, body = get(web, path, method="HEAD")
    assert status == 200 and body == b""
    assert headers["content-type"] == ctype


def test_page_names_only_same_origin_assets(web):
    _, _, body = get(web, "/")
    html = body.decode()
    refs = re.findall(r'(?:src|href|action)\s*=\s*"([^"]*)"', html)
    assert sorted(refs) == ["/app.css", "/app.js"]
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html, re.I)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "style=" not in html and "<style" not in html
    # The script asks its own origin only (relative URLs under /api/v1/).
    js = (REPO / "web/app.js").read_text()
    for url in re.findall(r'["\'`](/[^"\'`]*|[a-z]+://[^"\'`]*)["\'`]', js):
        assert url.startswith("/api/v1/") or url == "/raw", url
    assert "://" not in js


def test_script_never_makes_html_or_code():
    js = (REPO / "web/app.js").read_text()
    # Comments too: a name in a comment is as suspect as one in code.
    for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(",
                "new Function", "Function(", "document.write",
                "setTimeout(\"", "setTimeout('", "setInterval(\"",
                "setInterval('", "createContextualFragment", "DOMParser",
                "srcdoc", "javascript:"):
        assert bad not in js, bad
    assert "textContent" in js


@pytest.mark.parametrize("path", [
    "/index.html", "/app.js/", "/app.jsx", "/web/app.js", "//", "/app",
    "/App.js", "/app.css.map", "/favicon.ico", "/..%2fapp.js",
])
def test_unknown_paths_still_404(web, path):
    status, _, _ = get(web, path)
    assert status == 404, path


def test_page_methods(web):
    status, headers, _ = get(web, "/", method="DELETE")
    assert status == 405
    status, _, _ = get(web, "/app.js", method="POST", body=b"x")
    assert status == 405
