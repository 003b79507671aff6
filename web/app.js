/*
 * mailrepd's page: the message list (newest first, a page at a time,
 * polled every few seconds), search, one message's text, headers and
 * raw source, and delete.  It asks the JSON API of the same origin only.
 *
 * Mail is hostile: every string from a message reaches the page through
 * textContent, as text, never as markup; HTML mail is not rendered.
 */
"use strict";

(function () {
	const PAGE_SIZE = 50;		/* messages per page of the list */
	const POLL_MS = 3000;		/* how often the list is asked again */
	const RAW_SHOWN = 2 * 1024 * 1024;	/* raw characters shown */

	const state = {
		start: 0,		/* first message of the page shown */
		total: 0,		/* messages in the list or search */
		query: "",		/* the search, "" for every message */
		shown: "",		/* what the rows show (to skip redraws) */
		busy: false,		/* a list request is under way */
		open: null,		/* the ID of the message open, or null */
		raw: null,		/* its raw source once fetched */
		tab: "text"
	};

	function $(id) {
		return document.getElementById(id);
	}

	/* An element with text (never markup) and an optional class. */
	function el(tag, text, cls) {
		const e = document.createElement(tag);
		if (text !== undefined)
			e.textContent = text;
		if (cls)
			e.className = cls;
		return e;
	}

	function say(text, isError) {
		$("status").textContent = text;
		$("status").classList.toggle("error", Boolean(isError));
	}

	/* A request to the API; rejects unless the answer is 2xx. */
	async function call(path, options) {
		const r = await fetch(path, Object.assign({
			credentials: "same-origin",
			cache: "no-store"
		}, options || {}));
		if (!r.ok) {
			let why = r.status + " " + r.statusText;
			try {
				why += ": " + (await r.json()).error;
			} catch (e) {
				/* not JSON: the status says enough */
			}
			throw new Error(why);
		}
		return r;
	}

	function address(a) {
		if (!a)
			return "";
		return a.Name ? a.Name + " <" + a.Address + ">" : a.Address;
	}

	function when(iso) {
		const d = new Date(iso);
		return isNaN(d.getTime()) ? String(iso || "") :
		    d.toLocaleString();
	}

	function listPath() {
		const q = "start=" + state.start + "&limit=" + PAGE_SIZE;
		if (state.query === "")
			return "/api/v1/messages?" + q;
		return "/api/v1/search?query=" +
		    encodeURIComponent(state.query) + "&" + q;
	}

	/* One row of the list: sender, subject, user, arrival. */
	function row(m) {
		const tr = document.createElement("tr");
		tr.dataset.id = m.ID;
		if (!m.Read)
			tr.classList.add("unread");
		if (m.ID === state.open)
			tr.classList.add("open");
		const from = m.From ? (m.From.Name || m.From.Address) : "";
		tr.append(el("td", from), el("td", m.Subject || "(no subject)"),
		    el("td", m.Username || ""), el("td", when(m.Created)));
		tr.title = address(m.From);
		tr.addEventListener("click", function () {
			openMessage(m.ID);
		});
		return tr;
	}

	function drawPager(count) {
		const first = count > 0 ? state.start + 1 : 0;
		$("range").textContent = first.toLocaleString() + "\u2013" +
		    (state.start + count).toLocaleString() + " of " +
		    state.total.toLocaleString() +
		    (state.query !== "" ? " found" : "");
		$("newer").disabled = state.start === 0;
		$("older").disabled = state.start + count >= state.total;
	}

	/* Asks for the page shown and redraws the rows if they changed. */
	async function refresh() {
		if (state.busy)
			return;
		state.busy = true;
		try {
			const page = await (await call(listPath())).json();
			state.total = page.messages_count;
			if (page.messages.length === 0 && state.start > 0 &&
			    state.total > 0) {
				/* the page emptied (deletes): go back to the last */
				state.start = Math.max(0, Math.floor(
				    (state.total - 1) / PAGE_SIZE) * PAGE_SIZE);
				state.busy = false;
				return refresh();
			}
			const shown = JSON.stringify([state.open,
			    page.messages.map(function (m) {
				return [m.ID, m.Read];
			})]);
			if (shown !== state.shown) {
				$("rows").replaceChildren.apply($("rows"),
				    page.messages.map(row));
				state.shown = shown;
			}
			drawPager(page.messages.length);
			say(state.total === 0 ? (state.query !== "" ?
			    "Nothing matches." : "No mail yet.") : "");
		} catch (e) {
			say("Could not list the mail: " + e.message, true);
		} finally {
			state.busy = false;
		}
	}

	function goTo(start) {
		state.start = Math.max(0, start);
		state.shown = "";
		refresh();
	}

	/*
	 * The header fields of a raw message: its head (up to the first
	 * empty line), continuation lines unfolded; [[name, value], ...].
	 */
	function parseHeaders(raw) {
		const end = raw.search(/\r?\n\r?\n/);
		const head = end < 0 ? raw : raw.slice(0, end);
		const fields = [];
		head.split(/\r?\n/).forEach(function (line) {
			if (/^[ \t]/.test(line) && fields.length > 0) {
				fields[fields.length - 1][1] += " " + line.trim();
				return;
			}
			const colon = line.indexOf(":");
			if (colon > 0)
				fields.push([line.slice(0, colon),
				    line.slice(colon + 1).trim()]);
		});
		return fields;
	}

	function drawHeaders() {
		$("header-rows").replaceChildren.apply($("header-rows"),
		    parseHeaders(state.raw).map(function (f) {
			const tr = document.createElement("tr");
			tr.append(el("td", f[0]), el("td", f[1]));
			return tr;
		}));
	}

	function drawRaw() {
		$("tab-raw").textContent = state.raw.length > RAW_SHOWN ?
		    state.raw.slice(0, RAW_SHOWN) + "\n\n[" +
		    (state.raw.length - RAW_SHOWN).toLocaleString() +
		    " more characters not shown]" : state.raw;
	}

	/* Shows one tab; Headers and Raw fetch the raw source once. */
	async function showTab(tab) {
		state.tab = tab;
		document.querySelectorAll("#tabs button").forEach(function (b) {
			b.setAttribute("aria-selected",
			    String(b.dataset.tab === tab));
		});
		document.querySelectorAll(".tab").forEach(function (t) {
			t.hidden = t.id !== "tab-" + tab;
		});
		if (tab === "text" || state.open === null)
			return;
		const id = state.open;
		try {
			if (state.raw === null) {
				const text = await (await call("/api/v1/message/" +
				    encodeURIComponent(id) + "/raw")).text();
				if (state.open !== id)
					return;
				state.raw = text;
			}
			if (tab === "headers")
				drawHeaders();
			else
				drawRaw();
		} catch (e) {
			say("Could not read the message: " + e.message, true);
		}
	}

	async function openMessage(id) {
		state.open = id;
		state.raw = null;
		document.querySelectorAll("#rows tr").forEach(function (tr) {
			tr.classList.toggle("open", tr.dataset.id === id);
		});
		try {
			const m = await (await call("/api/v1/message/" +
			    encodeURIComponent(id))).json();
			if (state.open !== id)
				return;
			$("v-subject").textContent = m.Subject || "(no subject)";
			$("v-from").textContent = address(m.From);
			$("v-to").textContent = (m.To || []).map(address)
			    .join(", ");
			$("v-date").textContent = m.Date || when(m.Created);
			$("v-user").textContent = (m.Username || "") +
			    (m.Mailbox ? " / " + m.Mailbox : "");
			$("tab-text").textContent = m.Text;
			$("v-note").textContent = m.Text === "" ?
			    "No plain text to show (a multipart or HTML " +
			    "message): see Headers and Raw.  HTML mail is " +
			    "not displayed." : "";
			$("header-rows").replaceChildren();
			$("tab-raw").textContent = "";
			$("view").hidden = false;
			showTab(state.tab);
		} catch (e) {
			say("Could not open the message: " + e.message, true);
		}
	}

	function closeMessage() {
		state.open = null;
		state.raw = null;
		state.shown = "";
		$("view").hidden = true;
		refresh();
	}

	/* DELETE /api/v1/messages: those IDs, or every message. */
	async function remove(ids) {
		try {
			await call("/api/v1/messages", ids === null ?
			    { method: "DELETE" } : {
				method: "DELETE",
				headers: { "Content-Type": "application/json" },
				body: JSON.stringify({ IDs: ids })
			});
			closeMessage();
		} catch (e) {
			say("Could not delete: " + e.message, true);
		}
	}

	function wire() {
		$("search").addEventListener("submit", function (ev) {
			ev.preventDefault();
			state.query = $("query").value.trim();
			goTo(0);
		});
		$("clear").addEventListener("click", function () {
			$("query").value = "";
			state.query = "";
			goTo(0);
		});
		$("newer").addEventListener("click", function () {
			goTo(state.start - PAGE_SIZE);
		});
		$("older").addEventListener("click", function () {
			goTo(state.start + PAGE_SIZE);
		});
		$("close").addEventListener("click", closeMessage);
		$("delete-one").addEventListener("click", function () {
			if (state.open !== null)
				remove([state.open]);
		});
		$("delete-all").addEventListener("click", function () {
			if (window.confirm("Delete every message of every user?"))
				remove(null);
		});
		document.querySelectorAll("#tabs button").forEach(function (b) {
			b.addEventListener("click", function () {
				showTab(b.dataset.tab);
			});
		});
		document.addEventListener("keydown", function (ev) {
			if (ev.key === "Escape" && state.open !== null)
				closeMessage();
		});
		document.addEventListener("mailrepd:refresh", refresh);
		window.setInterval(function () {
			if (!document.hidden)
				refresh();
		}, POLL_MS);
	}

	wire();
	showTab("text");
	refresh();
}());
