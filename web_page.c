/*
 * web_page.c — the web page: web/index.html, web/app.css,
 * web/app.js and web/live.js, made into C arrays by the Makefile (build/gen/
 * web_assets.inc), so that the binary needs no files and no network
 * to show it.
 *
 * Mail is hostile: the script puts every string from a message into
 * the page as text (textContent), never as HTML, and the policy below
 * forbids inline script and style, eval, and every origin but ours, so
 * that markup which slipped through could still run nothing.  HTML mail
 * is shown only in a frame without scripts or an origin.
 */
#include <stddef.h>
#include <string.h>

#include "http.h"
#include "web_page.h"

#include "build/gen/web_assets.inc"

/*
 * The page may load its own script and style, ask its own origin, and
 * frame its own origin's sanitized HTML (in a sandbox, web_message.c).
 */
#define WEB_PAGE_CSP							\
	"Content-Security-Policy: default-src 'none'; script-src 'self'; " \
	"style-src 'self'; connect-src 'self'; frame-src 'self'; "	\
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\n"

static const struct {
	const char		*path;
	const char		*type;
	const unsigned char	*data;
	size_t			 len;
} assets[] = {
	{ "/", "text/html; charset=utf-8", web_index_html,
	    sizeof(web_index_html) },
	{ "/app.css", "text/css; charset=utf-8", web_app_css,
	    sizeof(web_app_css) },
	{ "/app.js", "text/javascript; charset=utf-8", web_app_js,
	    sizeof(web_app_js) },
	{ "/live.js", "text/javascript; charset=utf-8", web_live_js,
	    sizeof(web_live_js) },
};

void
web_page_serve(struct session *s, const struct http_request *req,
    const char *arg)
{
	size_t	 i;

	(void)arg;
	for (i = 0; i < sizeof(assets) / sizeof(*assets); i++)
		if (strcmp(assets[i].path, req->path) == 0) {
			http_reply(s, 200, assets[i].type, assets[i].data,
			    assets[i].len, WEB_PAGE_CSP);
			return;
		}
	http_error(s, 404, "not found");
}
