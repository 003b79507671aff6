/*
 * mailrepd's live updates: listens to the event stream (/api/v1/events,
 * Server-Sent Events) and, when mail arrives or changes, tells the page
 * to show its list again with a "mailrepd:refresh" event on document
 * (app.js listens).  A burst of events makes one refresh.  EventSource
 * reconnects by itself, saying the last event it had (Last-Event-ID);
 * a "resync" event means some were missed, which a refresh mends too.
 * The root element's data-live says whether the stream is up.
 */
"use strict";

(function () {
	const QUIET_MS = 250;	/* events within this make one refresh */
	const KINDS = ["new", "flags", "expunge", "deleted", "resync"];
	const root = document.documentElement;
	let timer = null;

	if (typeof EventSource === "undefined")
		return;

	function changed() {
		if (timer !== null)
			return;
		timer = window.setTimeout(function () {
			timer = null;
			document.dispatchEvent(new CustomEvent("mailrepd:refresh"));
		}, QUIET_MS);
	}

	const stream = new EventSource("/api/v1/events");
	root.dataset.live = "connecting";
	stream.addEventListener("open", function () {
		root.dataset.live = "on";
	});
	stream.addEventListener("error", function () {
		root.dataset.live = "off";
	});
	KINDS.forEach(function (kind) {
		stream.addEventListener(kind, changed);
	});
}());
