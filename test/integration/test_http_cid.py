"""cid: images (RFC 2392) in HTML mail: shown from the same message's
inline part through a URL scoped to that message, only for image types
a browser shows, never a part of another message, never a part that is
not an image, an SVG under a policy that runs nothing, a huge image in
steps."""
import base64
import re
import struct
import zlib

from test_http import api, get, web  # noqa: F401 (web: fixture)


def png(width=3, height=2):
    """A valid PNG of width x height red pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + b"\xff\0\0" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(
        ">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(
        b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png()
SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
       b'<script>alert(2)</script><rect width="9" height="9"/></svg>')


def related(subject, html, parts):
    """multipart/related: the HTML, then (type, content-id, bytes,
    extra header) parts, base64."""
    out = ("From: s@remote.test\r\nTo: alice@example.com\r\n"
           "Subject: %s\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/related; boundary=r\r\n\r\n"
           "--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n%s\r\n"
           % (subject, html)).encode()
    for ctype, cid, data, extra in parts:
        out += ("--r\r\nContent-Type: %s\r\n%sContent-Transfer-Encoding: "
                "base64\r\n%s\r\n" % (
                    ctype, "Content-ID: %s\r\n" % cid if cid else "",
                    extra)).encode() + base64.encodebytes(data)
    return out + b"--r--\r\n"


def deliver_get(web, subject, html, parts):
    web.deliver("s@remote.test", ["alice@example.com"],
                related(subject, html, parts))
    m = api(web, "/api/v1/messages?limit=1")["messages"][0]
    assert m["Subject"] == subject
    return api(web, "/api/v1/message/" + m["ID"])


def srcs(html):
    return re.findall(r'src="([^"]*)"', html)


def test_cid_image_is_shown_from_its_message(web):
    m = deliver_get(web, "logo", '<p>Hi <img src="cid:logo.1@x.test" '
                    'alt=logo></p>', [("image/png", "<logo.1@x.test>",
                                       PNG, "")])
    url = "/api/v1/message/%s/cid/logo.1@x.test" % m["ID"]
    assert srcs(m["HTML"]) == [url]
    assert [(p["ContentID"], p["ContentType"], p["PartID"])
            for p in m["Inline"]] == [("logo.1@x.test", "image/png", "2")]
    assert m["Attachments"] == []
    status, headers, body = get(web, url)
    assert status == 200 and body == PNG
    assert headers["content-type"] == "image/png"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"] == "inline"
    assert headers["cross-origin-resource-policy"] == "cross-origin"
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy
    assert "script" not in policy
    # The framed document may load it: images from its own server only.
    status, headers, body = get(web, "/api/v1/message/%s/html" % m["ID"])
    assert status == 200 and srcs(body.decode()) == [url]
    policy = headers["content-security-policy"]
    assert "img-src 'self'" in policy and "script-src" not in policy
    # Everything else keeps its own policy: this origin only.
    _, headers, _ = get(web, "/api/v1/message/%s/part/2" % m["ID"])
    assert headers["cross-origin-resource-policy"] == "same-origin"


def test_cid_escapes_and_jpg(web):
    """A cid written %-escaped, as RFC 2392 has it, names the Content-ID
    unescaped; image/jpg (common in mail) is served as image/jpeg."""
    m = deliver_get(web, "escaped", '<img src="cid:a%40b%2Fc">',
                    [("image/jpg", "<a@b/c>", b"\xff\xd8\xff fake", "")])
    assert srcs(m["HTML"]) == ["/api/v1/message/%s/cid/a%%40b%%2Fc"
                               % m["ID"]]
    status, headers, body = get(web, srcs(m["HTML"])[0])
    assert status == 200 and body == b"\xff\xd8\xff fake"
    assert headers["content-type"] == "image/jpeg"


def test_cid_of_another_message_is_not_found(web):
    a = deliver_get(web, "a", '<img src="cid:shared@x">',
                    [("image/png", "<shared@x>", PNG, "")])
    a_url = "/api/v1/message/%s/cid/shared@x" % a["ID"]
    # B names A's image by cid and by A's URL: neither reaches it.
    b = deliver_get(web, "b", '<img src="cid:mine@x"><img src="%s">'
                    '<img src="cid:shared@x">' % a_url,
                    [("image/png", "<mine@x>", PNG, "")])
    assert srcs(b["HTML"]) == [
        "/api/v1/message/%s/cid/mine@x" % b["ID"],
        "/api/v1/message/%s/cid/shared@x" % b["ID"]]
    assert get(web, "/api/v1/message/%s/cid/shared@x" % b["ID"])[0] == 404
    for bad in ("..%2F..%2F" + a["ID"] + "%2Fcid%2Fshared@x",
                "%2E%2E", "", "%", "%00shared@x", "x" * 600):
        status, _, _ = get(web, "/api/v1/message/%s/cid/%s" % (
            b["ID"], bad))
        assert status == 404, bad
    status, _, _ = get(web, "/api/v1/message/%s/cid/shared@x/x" % b["ID"])
    assert status == 404
    assert get(web, a_url)[0] == 200
    assert get(web, "/api/v1/message/%s-1/cid/shared@x" % ("0" * 32))[0] \
        == 404


def test_cid_of_a_part_that_is_not_an_image(web):
    """A Content-ID on HTML, text or an unknown type is no image: 404,
    never a page of this origin."""
    m = deliver_get(web, "not images", '<img src="cid:page@x">'
                    '<img src="cid:bin@x"><img src="cid:att@x">',
                    [("text/html", "<page@x>",
                      b"<script>alert(1)</script>", ""),
                     ("application/octet-stream", "<bin@x>", PNG, ""),
                     ("image/png", "<att@x>", PNG,
                      "Content-Disposition: attachment; filename=a.png\r\n")])
    for cid in ("page@x", "bin@x"):
        status, headers, body = get(web, "/api/v1/message/%s/cid/%s" % (
            m["ID"], cid))
        assert status == 404 and b"alert" not in body, cid
    # An image named as an attachment is still this message's image.
    assert get(web, "/api/v1/message/%s/cid/att@x" % m["ID"])[0] == 200
    assert [p["ContentID"] for p in m["Attachments"]] == ["att@x"]
    assert sorted(p["ContentID"] for p in m["Inline"]) == ["bin@x",
                                                           "page@x"]


def test_svg_runs_nothing(web):
    m = deliver_get(web, "svg", '<img src="cid:s@x">',
                    [("image/svg+xml", "<s@x>", SVG, "")])
    status, headers, body = get(web, "/api/v1/message/%s/cid/s@x" % m["ID"])
    assert status == 200 and body == SVG
    assert headers["content-type"] == "image/svg+xml"
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy
    assert "script-src" not in policy and "allow-scripts" not in policy


def test_huge_image_is_sent_in_steps(web):
    big = png(2048, 1024)               # 6 MiB raw, compresses small
    big = big + bytes(6 * 1024 * 1024)  # so pad it past any buffer
    m = deliver_get(web, "huge", '<img src="cid:big@x">',
                    [("image/png", "<big@x>", big, "")])
    status, headers, body = get(web, "/api/v1/message/%s/cid/big@x"
                                % m["ID"])
    assert status == 200 and body == big
    assert headers.get("transfer-encoding") == "chunked"
