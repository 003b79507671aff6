/*
 * web_page.h — the web page (web_page.c): its HTML, CSS and script,
 * embedded in the binary at build time, for web.c's route table.
 */
#ifndef MAILREPD_WEB_PAGE_H
#define MAILREPD_WEB_PAGE_H

struct http_request;
struct session;

/*
 * GET /, /app.js, /app.css, /live.js: the page's file of that path, with its type
 * and a Content-Security-Policy that lets the page run its own script
 * and style and ask its own origin only.
 */
void	web_page_serve(struct session *, const struct http_request *,
	    const char *arg);

#endif /* MAILREPD_WEB_PAGE_H */
