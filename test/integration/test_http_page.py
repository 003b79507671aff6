"""The web page (GET /, /app.js, /app.css): each asset served with its
type, the security headers and a Content-Security-Policy that lets the
page load its own script and style and talk to its own origin only; the
page names only same-origin assets; its script never turns a string
into HTML or code (mail is hostile); unknown paths stay 404."""
import json
import re
import shutil
import subprocess

import pytest

from conftest import HOST, REPO
from test_http import (  # noqa: F401 (web: the fixture)
    SECURITY_HEADERS, LMTPClientMany, get, web)

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
    assert policy["frame-src"] == ["'self'"]
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
    assert sorted(refs) == ["/api/v1/messages?start=0&amp;limit=50",
                            "/app.css", "/app.js", "/live.js"]
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html, re.I)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "style=" not in html and "<style" not in html
    # The script asks its own origin only (relative URLs under /api/v1/).
    js = (REPO / "web/app.js").read_text()
    for url in re.findall(r'["\'`](/[^"\'`]*|[a-z]+://[^"\'`]*)["\'`]', js):
        assert url.startswith("/api/v1/") or url in (
            "/raw", "/html", "/part/"), url
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


HOSTILE = '<img src=x onerror="alert(1)"><b>hostile</b>'


@pytest.mark.skipif(shutil.which("node") is None, reason="no node")
def test_page_script_drives_the_api(web):
    """app.js, run by node on a stand-in DOM (page_driver.js) against the
    server: lists and pages, opens a hostile message whose strings stay
    text, shows its headers and raw source, searches, deletes one and
    all, and never sets markup."""
    LMTPClientMany(web).send(55)
    web.deliver("s@remote.test", ["bob@example.com"], (
        "From: Mallory <m@evil.test>\r\nTo: bob@example.com\r\n"
        "Subject: %s\r\nX-Long: one\r\n two\r\n\r\n"
        "<script>alert(2)</script>\r\n" % HOSTILE).encode())
    p = subprocess.run(
        ["node", str(REPO / "test/integration/page_driver.js"),
         "http://%s:%d" % (HOST, web.http_port), str(REPO / "web/app.js"),
         str(REPO / "web/index.html")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    out = json.loads(p.stdout)
    assert out["markup"] == []
    assert len(out["rows"]) == 50
    assert out["rows"][0][:4] == ["", "Mallory", HOSTILE, "bob"]
    assert out["rows"][1][2] == "many 54"
    assert out["range"] == "1\u201350 of 56" and not out["older_disabled"]
    assert [r[2] for r in out["page2"]] == ["many %d" % i
                                            for i in range(5, -1, -1)]
    assert out["range2"] == "51\u201356 of 56"
    assert out["view_hidden"] is False
    assert out["subject"] == HOSTILE
    assert out["from"] == "Mallory <m@evil.test>"
    assert out["text"] == "<script>alert(2)</script>\r\n"
    assert ["Subject", HOSTILE] in out["headers"]
    assert ["X-Long", "one two"] in out["headers"]
    assert "<script>alert(2)</script>" in out["raw"]
    assert out["raw_hidden"] is False and out["text_hidden"] is True
    assert [r[2] for r in out["found"]] == [HOSTILE]
    assert out["after_delete"] == "1\u201350 of 55"
    assert out["after_all"] == "0\u20130 of 0"
    assert out["status"] == "No mail yet."
    for method, path in out["asked"]:
        assert path.startswith("/api/v1/"), path
    assert ["DELETE", "/api/v1/messages"] in out["asked"]
