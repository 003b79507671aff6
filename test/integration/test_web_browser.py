"""The page in a real browser: Debian's chromium, headless, driven by
chromium-driver through python3-selenium.  Loads the page, delivers mail
and sees it listed, opens an HTML message in its sandboxed frame, and
opens a hostile-HTML corpus (script, event handlers, javascript: links,
CSS url() exfiltration, meta refresh, nested frames, SVG script, remote
images): nothing runs, and a loopback listener standing for the
outside world sees no request until the reader asks for remote
content, and then only for images and style.  Screenshots are kept in
the test's tmp dir."""
import http.server
import shutil
import threading
import time

import pytest

from conftest import HOST, free_port
from hostile_html import TOKEN, hostile_message
from test_http import api, deliver, web  # noqa: F401 (web: the fixture)
from test_http_cid import PNG, related

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None or shutil.which("chromedriver") is None,
    reason="no chromium or chromedriver (Debian: chromium chromium-driver)")

from selenium.common.exceptions import (  # noqa: E402
    NoAlertPresentException, StaleElementReferenceException,
    TimeoutException)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-quic", "--no-first-run",
                  "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--window-size=1400,900")
WAIT = 30


class Beacon:
    """A loopback HTTP listener standing for every remote host: it
    records each request's path (none may come while content is
    blocked)."""

    def __init__(self):
        self.paths = []
        self.connections = 0
        beacon = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                beacon.paths.append(self.path)
                self.send_response(204)
                self.end_headers()
            do_POST = do_GET

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def get_request(self):
                beacon.connections += 1
                return super().get_request()

        self.port = free_port()
        self.httpd = Server((HOST, self.port), Handler)
        self.url = "http://%s:%d/" % (HOST, self.port)
        threading.Thread(target=self.httpd.serve_forever,
                         daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def beacon():
    b = Beacon()
    yield b
    b.close()


@pytest.fixture
def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument("--user-data-dir=%s" % (tmp_path / "chromium"))
    service = webdriver.ChromeService(executable_path=shutil.which(
        "chromedriver"), log_output=str(tmp_path / "chromedriver.log")) \
        if hasattr(webdriver, "ChromeService") else None
    if service is None:
        from selenium.webdriver.chrome.service import Service
        service = Service(shutil.which("chromedriver"),
                          log_path=str(tmp_path / "chromedriver.log"))
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(WAIT)
    yield d
    d.quit()


def until(d, what, timeout=WAIT):
    return WebDriverWait(d, timeout, poll_frequency=0.1).until(what)


def rows(d):
    """The list's rows as text, read at once (the list redraws)."""
    return d.execute_script("return Array.from(document.querySelectorAll("
                            "'#rows tr')).map((r) => r.innerText)")


def click_text(d, css, text):
    """Clicks the first element of css whose text starts with text,
    again if the page redrew it meanwhile."""
    def click(d):
        try:
            for e in d.find_elements(By.CSS_SELECTOR, css):
                if e.text.startswith(text):
                    e.click()
                    return True
        except StaleElementReferenceException:
            pass
        return False
    until(d, click)


def open_row(d, subject):
    until(d, lambda d: any(subject in r for r in rows(d)))
    click_text(d, "#rows td:nth-child(3)", subject)
    until(d, lambda d: d.find_element(By.ID, "v-subject").text == subject)


def frame_text(d):
    """The text of the HTML frame, once it has loaded."""
    frame = d.find_element(By.ID, "v-html")
    until(d, lambda d: "/html" in (frame.get_attribute("src") or ""))
    d.switch_to.frame(frame)
    try:
        return until(d, lambda d: d.find_element(
            By.TAG_NAME, "body").text or False)
    finally:
        d.switch_to.default_content()


def no_alert(d):
    try:
        d.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


NEWSLETTER = ("From: News <news@example.org>\r\nTo: alice@example.com\r\n"
              "Subject: Weekly news\r\nMIME-Version: 1.0\r\n"
              "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
              "--b\r\nContent-Type: text/plain\r\n\r\nHello in text\r\n"
              "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
              "<html><body style=\"font-family:sans-serif\">"
              "<h1 style=\"color:#24292f\">Hello from mailrepd</h1>"
              "<table border=1 cellpadding=6><tr><td bgcolor=\"#eef3fb\">"
              "Rendered as HTML</td><td><b>in a sandboxed frame</b></td>"
              "</tr></table><p><a href=\"https://example.org/\">a link"
              "</a></p></body></html>\r\n--b--\r\n").encode()


def test_page_lists_mail_and_shows_html(web, browser, tmp_path):
    browser.get("http://%s:%d/" % (HOST, web.http_port))
    until(browser, lambda d: d.find_element(By.ID, "status").text ==
          "No mail yet.")
    for i in range(3):
        deliver(web, "bob@example.com", "plain %d" % i)
    web.deliver("s@remote.test", ["alice@example.com"], NEWSLETTER)
    until(browser, lambda d: len(rows(d)) == 4)
    assert any("Weekly news" in r for r in rows(browser))
    # The users and mailboxes, and one user's mail.
    until(browser, lambda d: "bob" in d.find_element(By.ID,
                                                      "folders").text)
    click_text(browser, "#folders button", "bob")
    until(browser, lambda d: len(rows(d)) == 3)
    click_text(browser, "#folders button", "All mail")
    until(browser, lambda d: len(rows(d)) == 4)
    open_row(browser, "Weekly news")
    text = frame_text(browser)
    assert "Hello from mailrepd" in text and "Rendered as HTML" in text
    frame = browser.find_element(By.ID, "v-html")
    assert frame.get_attribute("sandbox") == \
        "allow-popups allow-popups-to-escape-sandbox"
    # Opening it marked it read, through the store.
    until(browser, lambda d: api(web, "/api/v1/messages?user=alice")[
        "unread"] == 0)
    assert browser.execute_script(
        "return document.querySelectorAll('#rows tr.unread').length") == 3
    browser.save_screenshot(str(tmp_path / "page-html-message.png"))
    # Its text, headers and raw tabs.
    browser.find_element(By.CSS_SELECTOR, "[data-tab=text]").click()
    until(browser, lambda d: d.find_element(By.ID, "tab-text").text ==
          "Hello in text")
    browser.find_element(By.CSS_SELECTOR, "[data-tab=headers]").click()
    until(browser, lambda d: "Weekly news" in d.find_element(
        By.ID, "tab-headers").text)


def test_hostile_html_runs_nothing_and_loads_nothing(web, browser, beacon,
                                                     tmp_path):
    browser.get("http://%s:%d/" % (HOST, web.http_port))
    web.deliver("s@remote.test", ["alice@example.com"],
                hostile_message(beacon.url))
    open_row(browser, "hostile")
    text = frame_text(browser)
    assert "end of corpus" in text and "Hostile" in text
    # Click every link the corpus left: none leads anywhere.
    frame = browser.find_element(By.ID, "v-html")
    browser.switch_to.frame(frame)
    for a in browser.find_elements(By.TAG_NAME, "a"):
        try:
            a.click()
        except Exception:       # not clickable: fine
            pass
    browser.switch_to.default_content()
    time.sleep(3)               # time for anything that would fire
    browser.save_screenshot(str(tmp_path / "page-hostile.png"))
    assert no_alert(browser)
    assert browser.title == "mailrepd"
    assert TOKEN not in browser.page_source
    assert len(browser.window_handles) == 1
    assert beacon.connections == 0, beacon.paths
    # The reader asks for remote content: images and style only.
    browser.find_element(By.ID, "load-remote").click()
    until(browser, lambda d: "remote=1" in d.find_element(
        By.ID, "v-html").get_attribute("src"))
    try:
        until(browser, lambda d: "/img.png" in beacon.paths, timeout=10)
    except TimeoutException:
        pytest.fail("remote image never asked for: %r" % beacon.paths)
    time.sleep(2)
    allowed = {"/img.png", "/td.png", "/css", "/exfil-a", "/import.css",
               "/escaped", "/noscript"}
    assert set(beacon.paths) <= allowed, beacon.paths
    assert no_alert(browser) and browser.title == "mailrepd"


def test_charsets_read_as_written(web, browser, tmp_path):
    """HTML in KOI8-R and text in Shift_JIS show as their letters; a
    charset not known is named above the message."""
    browser.get("http://%s:%d/" % (HOST, web.http_port))
    russian, japanese = "Съешь же ещё этих булок", "いろはにほへと 漢字"
    web.deliver("s@remote.test", ["alice@example.com"], (
        "From: s@remote.test\r\nTo: alice@example.com\r\n"
        "Subject: charsets\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\n"
        ).encode() + japanese.encode("cp932") + (
        "\r\n--b\r\nContent-Type: text/html; charset=koi8-r\r\n\r\n"
        "<p>").encode() + russian.encode("koi8_r") + b"</p>\r\n--b--\r\n")
    open_row(browser, "charsets")
    assert frame_text(browser) == russian
    browser.save_screenshot(str(tmp_path / "page-charsets.png"))
    browser.find_element(By.CSS_SELECTOR, "[data-tab=text]").click()
    until(browser, lambda d: d.find_element(By.ID, "tab-text").text ==
          japanese)
    assert browser.find_element(By.ID, "v-note").text == ""
    web.deliver("s@remote.test", ["alice@example.com"],
                b"From: s@remote.test\r\nSubject: klingon\r\n"
                b"Content-Type: text/plain; charset=x-klingon\r\n\r\n"
                b"Qapla\xa4\r\n")
    open_row(browser, "klingon")
    until(browser, lambda d: "x-klingon" in d.find_element(
        By.ID, "v-note").text)
    assert browser.find_element(By.ID, "tab-text").text == "Qapla\ufffd"


def test_cid_image_shows_in_the_frame(web, browser, beacon, tmp_path):
    """An inline image of the message itself loads in the sandboxed
    frame (its policy allows this server's images, the image's allows
    the frame's own origin); a remote one stays blocked."""
    browser.get("http://%s:%d/" % (HOST, web.http_port))
    web.deliver("s@remote.test", ["alice@example.com"], related(
        "inline image", '<p>logo: <img src="cid:logo@x">'
        '<img src="%s/far.png"></p>' % beacon.url,
        [("image/png", "<logo@x>", PNG, "")]))
    open_row(browser, "inline image")
    assert "logo" in frame_text(browser)
    browser.switch_to.frame(browser.find_element(By.ID, "v-html"))
    try:
        width = until(browser, lambda d: d.execute_script(
            "var i = document.images[0];"
            "return i.complete && i.naturalWidth;") or False)
        assert width == 3
    finally:
        browser.switch_to.default_content()
    browser.save_screenshot(str(tmp_path / "page-cid-image.png"))
    assert beacon.connections == 0, beacon.paths
