"""Text and HTML in the charsets mail is written in, delivered over LMTP
and read through the API: converted to UTF-8 in Text, HTML and the
framed HTML document; bytes that are no character of their charset, and
every non-ASCII byte of a charset not known, become U+FFFD, and the
message says which charset it did not know.  UTF-16 and UTF-7 are
converted; ISO-2022-KR, ISO-2022-CN and HZ are the WHATWG Encoding
Standard's "replacement" encoding, one U+FFFD; a byte order mark
decides the charset, as the standard's decode does."""
import base64
import quopri

import pytest

from test_http import api, get, web  # noqa: F401 (web: fixture)

# (charset label, text, how Python writes it in that charset)
SAMPLES = [
    ("iso-8859-1", "Grüße, café, naïve — ¿sí?", "cp1252"),
    ("iso-8859-2", "Zażółć gęślą jaźń", "iso8859_2"),
    ("iso-8859-5", "Съешь же ещё этих", "iso8859_5"),
    ("iso-8859-7", "Ξεσκεπάζω την ψυχοφθόρα", "iso8859_7"),
    ("iso-8859-15", "Prix: 5 € œuvre", "iso8859_15"),
    ("windows-1250", "Příliš žluťoučký kůň", "cp1250"),
    ("windows-1251", "Широкая электрификация", "cp1251"),
    ("windows-1252", "“smart quotes” – 10 €", "cp1252"),
    ("windows-1255", "שלום עולם", "cp1255"),
    ("koi8-r", "В чащах юга жил бы цитрус", "koi8_r"),
    ("koi8-u", "Гей, ґава їжак", "koi8_u"),
    ("shift_jis", "いろはにほへと ｶﾀｶﾅ 漢字①", "cp932"),
    ("euc-jp", "色は匂へど散りぬるを", "euc_jp"),
    ("iso-2022-jp", "わかよたれそ 常ならむ", "iso2022_jp"),
    ("gb2312", "我能吞下玻璃而不伤身体", "gb2312"),
    ("gbk", "中文測試 镕", "gbk"),
    ("gb18030", "€ 中文 ḿ \U00020000", "gb18030"),
    ("big5", "我能吞下玻璃而不傷身體", "big5"),
    ("euc-kr", "나는 유리를 먹을 수 있어요", "euc_kr"),
    ("ks_c_5601-1987", "똠방각하", "cp949"),
    ("us-ascii", "plain", "ascii"),
    ("utf-16le", "Grüße, 日本 😀 ok", "utf_16_le"),
    ("utf-16be", "Grüße, 日本 😀 ok", "utf_16_be"),
    ("utf-16", "Grüße, 日本 😀 ok", "utf_16"),        # with a BOM
    ("unicode", "Grüße, 日本 😀 ok", "utf_16_le"),    # WHATWG: LE
    ("utf-7", "Hi Mom -☺-! A≢Α. 日本語 😀 +", "utf_7"),
]


def message(subject, parts):
    """A multipart/alternative of (type, charset, encoding, bytes)."""
    out = ("From: s@remote.test\r\nTo: alice@example.com\r\n"
           "Subject: %s\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
           % subject).encode()
    for ctype, charset, cte, body in parts:
        out += b"--b\r\nContent-Type: " + ctype.encode()
        if charset is not None:
            out += b"; charset=\"" + charset.encode() + b"\""
        out += b"\r\nContent-Transfer-Encoding: " + cte.encode() + \
            b"\r\n\r\n"
        if cte == "base64":
            body = base64.encodebytes(body)
        elif cte == "quoted-printable":
            body = quopri.encodestring(body)
        out += body + b"\r\n"
    return out + b"--b--\r\n"


def newest(web):
    m = api(web, "/api/v1/messages?limit=1")["messages"][0]
    return api(web, "/api/v1/message/" + m["ID"])


@pytest.mark.parametrize("label,text,codec", SAMPLES)
def test_text_and_html_are_utf8(web, label, text, codec):
    raw = text.encode(codec)
    cte = "7bit" if label in ("iso-2022-jp", "utf-7") else "base64"
    web.deliver("s@remote.test", ["alice@example.com"], message(
        label, [("text/plain", label, cte, raw),
                ("text/html", label.upper(), "quoted-printable",
                 ("<p>%s</p>" % text).encode(codec))]))
    m = newest(web)
    assert m["Text"] == text
    assert m["HTML"] == "<p>%s</p>" % text
    assert m["UnknownCharset"] == ""
    status, headers, body = get(web, "/api/v1/message/%s/html" % m["ID"])
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert body.decode() == "<p>%s</p>" % text


def test_8bit_body_over_lmtp(web):
    """Bytes sent as they are (8bit), not transfer-encoded."""
    web.deliver("s@remote.test", ["alice@example.com"], message(
        "8bit", [("text/plain", "koi8-r", "8bit",
                  "Привет, мир".encode("koi8_r"))]))
    assert newest(web)["Text"] == "Привет, мир"


def test_unlabelled_and_ascii_are_utf8_or_windows_1252(web):
    web.deliver("s@remote.test", ["alice@example.com"], message(
        "no charset", [("text/plain", None, "8bit", "café".encode())]))
    assert newest(web)["Text"] == "café"
    web.deliver("s@remote.test", ["alice@example.com"], message(
        "latin-1 said ascii", [("text/plain", "us-ascii", "base64",
                                "café €".encode("cp1252"))]))
    m = newest(web)
    assert m["Text"] == "café €" and m["UnknownCharset"] == ""


def test_bad_bytes_become_replacement(web):
    sjis = "日本".encode("cp932")
    web.deliver("s@remote.test", ["alice@example.com"], message(
        "broken", [("text/plain", "shift_jis", "base64",
                    sjis + b"\x81\x20" + b"\xff" + b"ok" + sjis[:1]),
                   ("text/html", "utf-8", "base64",
                    b"<p>a\xc3\x28\xed\xa0\x80z</p>")]))
    m = newest(web)
    assert m["Text"] == "日本\ufffd \ufffdok\ufffd"
    assert m["HTML"] == "<p>a\ufffd(\ufffd\ufffd\ufffdz</p>"


def test_unknown_charset_is_marked(web):
    web.deliver("s@remote.test", ["alice@example.com"], message(
        "unknown", [("text/plain", "x-klingon", "base64",
                     b"abc \xe4\xf6 <\x00>"),
                    ("text/html", "utf-8", "base64", b"<p>\xc3\xa4</p>")]))
    m = newest(web)
    assert m["Text"] == "abc \ufffd\ufffd <\x00>"
    assert m["UnknownCharset"] == "x-klingon"
    assert m["HTML"] == "<p>\u00e4</p>"
    web.deliver("s@remote.test", ["alice@example.com"], message(
        "html only unknown", [("text/html", "x-mac-klingon", "8bit",
                               b"<b>\xa4</b>")]))
    m = newest(web)
    assert m["HTML"] == "<b>\ufffd</b>"
    assert m["UnknownCharset"] == "x-mac-klingon"


def test_conversion_keeps_to_the_limits(web):
    """64 KiB of text in Big5 grows in UTF-8: cut at a character, never
    past the limit, never a broken character."""
    raw = ("漢字" * 20000).encode("big5")
    web.deliver("s@remote.test", ["alice@example.com"], message(
        "long", [("text/plain", "big5", "base64", raw)]))
    text = newest(web)["Text"]
    assert 60000 < len(text.encode()) <= 64 * 1024
    assert set(text) == {"漢", "字"}


# (charset label, bytes, the text they are): the edges of the decoders
EDGES = [
    ("utf-16le", b"a\x00b", "a\ufffd"),                 # an odd byte
    ("utf-16le", b"a\x00\x3d\xd8", "a\ufffd"),          # a lead at the end
    ("utf-16le", b"\x3d\xd8a\x00", "\ufffda"),          # lead, no trail
    ("utf-16le", b"\x00\xdca\x00", "\ufffda"),          # a trail alone
    ("utf-16be", b"\xd8\x3d\xde\x00\x00!", "\U0001f600!"),
    ("utf-16", b"\xfe\xff\x00a\x00b", "ab"),           # the BOM says BE
    ("windows-1252", b"\xef\xbb\xbfcaf\xc3\xa9", "café"),  # UTF-8 BOM
    ("utf-8", b"\xef\xbb\xbfok", "ok"),                  # BOM dropped
    ("utf-16be", b"\xff\xfea\x00", "a"),               # BOM over label
    ("utf-7", b"a+-b", "a+b"),
    ("utf-7", b"+ZeVnLIqe x", "日本語 x"),                # a blank ends it
    ("utf-7", b"+AGE", "a"),                            # the text ends it
    ("utf-7", b"+AG-z", "\ufffdz"),                     # a unit cut short
    ("utf-7", b"+2D0-z", "\ufffdz"),                    # a lead alone
    ("utf-7", b"+2D0AYQ-", "\ufffda"),                  # lead, no trail
    ("utf-7", b"caf\xe9", "caf\ufffd"),
    ("iso-2022-kr", "한국어".encode("iso2022_kr"), "\ufffd"),
    ("csiso2022kr", b"plain ascii", "\ufffd"),
    ("hz-gb-2312", "中文".encode("hz"), "\ufffd"),
    ("iso-2022-cn", b"x", "\ufffd"),
]


@pytest.mark.parametrize("label,raw,text", EDGES)
def test_decoders_at_their_edges(web, label, raw, text):
    web.deliver("s@remote.test", ["alice@example.com"], message(
        label, [("text/plain", label, "base64", raw)]))
    m = newest(web)
    assert m["Text"] == text
    assert m["UnknownCharset"] == ""
