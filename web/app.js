/*
 * mailrepd's page: users and mailboxes on the left, the message list
 * (newest first, a page at a time, polled every few seconds), search,
 * and one message's HTML, text, headers, raw source and attachments;
 * mark read or unread, delete one, some or all.  It asks the JSON API
 * of the same origin only.
 *
 * Mail is hostile: every string from a message reaches the page through
 * textContent, as text, never as markup.  HTML mail is shown only in an
 * iframe whose sandbox allows no script and gives it no origin, from a
 * URL that the server answers with the HTML sanitized and a policy that
 * loads nothing from elsewhere until the reader asks for remote content.
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
		user: "",		/* whose mail, "" for everyone's */
		mailbox: "",		/* which of the user's mailboxes, or "" */
		shown: "",		/* what the rows show (to skip redraws) */
		folders: "",		/* what the folder list shows */
		busy: false,		/* a list request is under way */
		again: false,		/* and another was asked for meanwhile */
		selected: new Set(),	/* IDs ticked in the list */
		open: null,		/* the message open (its JSON), or null */
		raw: null,		/* its raw source once fetched */
		remote: false,		/* its remote content was asked for */
		tab: "html"
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

	/*
	 * A request to the API; rejects unless the answer is 2xx.  Every
	 * answer says Cache-Control: no-store, so the default cache mode
	 * never keeps one, and lets the first list call take the answer
	 * index.html's preload asked for.
	 */
	async function call(path, options) {
		const r = await fetch(path, Object.assign({
			credentials: "same-origin"
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

	/* A message's URL, and what is under it: raw, html, part/ID. */
	function messagePath(id, what) {
		return "/api/v1/message/" + encodeURIComponent(id) + (what || "");
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

	function size(n) {
		return n < 1024 ? n + " B" : n < 1048576 ?
		    (n / 1024).toFixed(1) + " KiB" :
		    (n / 1048576).toFixed(1) + " MiB";
	}

	/* The list's parameters: the page, and whose mail. */
	function listPath() {
		let q = "start=" + state.start + "&limit=" + PAGE_SIZE;
		if (state.user !== "")
			q += "&user=" + encodeURIComponent(state.user);
		if (state.mailbox !== "")
			q += "&mailbox=" + encodeURIComponent(state.mailbox);
		if (state.query === "")
			return "/api/v1/messages?" + q;
		return "/api/v1/search?query=" +
		    encodeURIComponent(state.query) + "&" + q;
	}

	function drawBulk() {
		const none = state.selected.size === 0;
		$("mark-read").disabled = none;
		$("mark-unread").disabled = none;
		$("delete-some").disabled = none;
	}

	/* One row of the list: a tick box, sender, subject, user, arrival. */
	function row(m) {
		const tr = document.createElement("tr");
		tr.dataset.id = m.ID;
		if (!m.Read)
			tr.classList.add("unread");
		if (state.open !== null && m.ID === state.open.ID)
			tr.classList.add("open");
		const tick = el("input");
		tick.type = "checkbox";
		tick.checked = state.selected.has(m.ID);
		tick.setAttribute("aria-label", "Select");
		tick.addEventListener("click", function (ev) {
			ev.stopPropagation();
			if (tick.checked)
				state.selected.add(m.ID);
			else
				state.selected.delete(m.ID);
			drawBulk();
		});
		const cell = el("td", undefined, "tick");
		cell.append(tick);
		const from = m.From ? (m.From.Name || m.From.Address) : "";
		tr.append(cell, el("td", from),
		    el("td", m.Subject || "(no subject)"),
		    el("td", (m.Username || "") + (state.user !== "" &&
		    m.Mailbox ? " / " + m.Mailbox : "")),
		    el("td", when(m.Created)));
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
		$("newer").disabled = $("newest").disabled = state.start === 0;
		$("older").disabled = $("oldest").disabled =
		    state.start + count >= state.total;
	}

	/*
	 * Asks for the page shown and redraws the rows if they changed; asks
	 * again when what is shown changed while the answer was on its way.
	 */
	async function refresh() {
		if (state.busy) {
			state.again = true;
			return;
		}
		state.busy = true;
		state.again = false;
		try {
			const path = listPath();
			const page = await (await call(path)).json();
			if (path !== listPath())
				state.again = true;
			else
				draw(page);
		} catch (e) {
			say("Could not list the mail: " + e.message, true);
		} finally {
			state.busy = false;
		}
		if (state.again)
			refresh();
	}

	/* Draws a page of the list (the last one if this one emptied). */
	function draw(page) {
		state.total = page.messages_count;
		if (page.messages.length === 0 && state.start > 0 &&
		    state.total > 0) {
			/* the page emptied (deletes): go back to the last */
			state.start = lastPage();
			state.again = true;
			return;
		}
		const shown = JSON.stringify([state.open && state.open.ID,
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
	}

	function lastPage() {
		return Math.max(0, Math.floor((state.total - 1) / PAGE_SIZE) *
		    PAGE_SIZE);
	}

	function goTo(start) {
		state.start = Math.max(0, start);
		state.shown = "";
		refresh();
	}

	/* Shows whose mail: everyone's, one user's, or one mailbox's. */
	function choose(user, mailbox) {
		state.user = user;
		state.mailbox = mailbox;
		state.selected.clear();
		state.folders = "";
		drawBulk();
		goTo(0);
		refreshFolders();
	}

	/* One entry of the folder list: a button with its counts. */
	function folder(label, unread, user, mailbox) {
		const li = el("li");
		const b = el("button", label);
		b.type = "button";
		if (unread > 0)
			b.append(el("span", String(unread), "count"));
		if (state.user === user && state.mailbox === mailbox)
			b.classList.add("current");
		b.addEventListener("click", function () {
			choose(user, mailbox);
		});
		li.append(b);
		return li;
	}

	/* The users and their mailboxes, redrawn when they changed. */
	async function refreshFolders() {
		try {
			const tree = await (await call("/api/v1/mailboxes")).json();
			const shown = JSON.stringify([state.user, state.mailbox,
			    tree]);
			if (shown === state.folders)
				return;
			state.folders = shown;
			const items = [folder("All mail", 0, "", "")];
			tree.users.forEach(function (u) {
				const boxes = el("ul");
				let unread = 0;
				u.Mailboxes.forEach(function (mb) {
					unread += mb.Unread;
					boxes.append(folder(mb.Name, mb.Unread,
					    u.Name, mb.Name));
				});
				const li = folder(u.Name, unread, u.Name, "");
				li.classList.add("user");
				li.append(boxes);
				items.push(li);
			});
			$("folder-list").replaceChildren.apply($("folder-list"),
			    items);
		} catch (e) {
			say("Could not list the mailboxes: " + e.message, true);
		}
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

	/* The HTML tab: the sanitized document, in the sandboxed frame. */
	function drawHtml() {
		$("v-html").src = messagePath(state.open.ID, "/html") +
		    (state.remote ? "?remote=1" : "");
		$("remote-bar").hidden = state.remote;
	}

	/*
	 * Shows one tab; HTML loads the frame, Headers and Raw fetch the
	 * raw source once.
	 */
	async function showTab(tab) {
		state.tab = tab;
		document.querySelectorAll("#tabs button").forEach(function (b) {
			b.setAttribute("aria-selected",
			    String(b.dataset.tab === tab));
		});
		document.querySelectorAll(".tab").forEach(function (t) {
			t.hidden = t.id !== "tab-" + tab;
		});
		if (state.open === null || tab === "text")
			return;
		if (tab === "html")
			return drawHtml();
		const id = state.open.ID;
		try {
			if (state.raw === null) {
				const text = await (await call(messagePath(id,
				    "/raw"))).text();
				if (state.open === null || state.open.ID !== id)
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

	/* The attachments: a download link each, name and size as text. */
	function drawAttachments(m) {
		$("attachments").replaceChildren.apply($("attachments"),
		    (m.Inline || []).concat(m.Attachments || []).map(function (a) {
			const li = el("li");
			const link = el("a", a.FileName || "part " + a.PartID);
			link.href = messagePath(m.ID, "/part/" +
			    encodeURIComponent(a.PartID));
			link.setAttribute("download", "");
			li.append(link, el("span", " " + a.ContentType + ", " +
			    size(a.Size), "meta"));
			return li;
		}));
	}

	function drawReadButton() {
		$("toggle-read").textContent = state.open.Read ?
		    "Mark unread" : "Mark read";
	}

	/* PUT /api/v1/messages: those IDs read (or unread). */
	async function setRead(ids, read) {
		await call("/api/v1/messages", {
			method: "PUT",
			headers: { "Content-Type": "application/json" },
			body: JSON.stringify({ IDs: ids, Read: read })
		});
		state.shown = "";
		state.folders = "";
	}

	async function openMessage(id) {
		state.raw = null;
		state.remote = false;
		document.querySelectorAll("#rows tr").forEach(function (tr) {
			tr.classList.toggle("open", tr.dataset.id === id);
		});
		try {
			const m = await (await call(messagePath(id))).json();
			state.open = m;
			$("v-subject").textContent = m.Subject || "(no subject)";
			$("v-from").textContent = address(m.From);
			$("v-to").textContent = (m.To || []).map(address)
			    .join(", ");
			$("v-date").textContent = m.Date || when(m.Created);
			$("v-user").textContent = (m.Username || "") +
			    (m.Mailbox ? " / " + m.Mailbox : "");
			$("tab-text").textContent = m.Text;
			$("tab-btn-html").hidden = m.HTML === "";
			$("v-note").textContent = m.Text === "" &&
			    m.HTML === "" ? "No text or HTML to show: see " +
			    "Headers and Raw." : m.UnknownCharset ? "Charset " +
			    m.UnknownCharset + " is not known here: " +
			    "characters outside ASCII show as \ufffd." : "";
			drawAttachments(m);
			$("header-rows").replaceChildren();
			$("tab-raw").textContent = "";
			$("view").hidden = false;
			if (!m.Read) {
				await setRead([id], true);
				m.Read = true;
				refresh();
				refreshFolders();
			}
			drawReadButton();
			showTab(m.HTML !== "" ? "html" : state.tab === "html" ?
			    "text" : state.tab);
		} catch (e) {
			say("Could not open the message: " + e.message, true);
		}
	}

	function closeMessage() {
		state.open = null;
		state.raw = null;
		state.shown = "";
		$("v-html").src = "about:blank";
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
			state.selected.clear();
			state.folders = "";
			drawBulk();
			closeMessage();
			refreshFolders();
		} catch (e) {
			say("Could not delete: " + e.message, true);
		}
	}

	/* Marks the ticked messages read or unread. */
	async function markSelected(read) {
		try {
			await setRead(Array.from(state.selected), read);
			state.selected.clear();
			drawBulk();
			refresh();
			refreshFolders();
		} catch (e) {
			say("Could not mark them: " + e.message, true);
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
		$("newest").addEventListener("click", function () {
			goTo(0);
		});
		$("newer").addEventListener("click", function () {
			goTo(state.start - PAGE_SIZE);
		});
		$("older").addEventListener("click", function () {
			goTo(state.start + PAGE_SIZE);
		});
		$("oldest").addEventListener("click", function () {
			goTo(lastPage());
		});
		$("close").addEventListener("click", closeMessage);
		$("delete-one").addEventListener("click", function () {
			if (state.open !== null)
				remove([state.open.ID]);
		});
		$("toggle-read").addEventListener("click", async function () {
			try {
				await setRead([state.open.ID], !state.open.Read);
				state.open.Read = !state.open.Read;
				drawReadButton();
				refresh();
				refreshFolders();
			} catch (e) {
				say("Could not mark it: " + e.message, true);
			}
		});
		$("load-remote").addEventListener("click", function () {
			state.remote = true;
			drawHtml();
		});
		$("mark-read").addEventListener("click", function () {
			markSelected(true);
		});
		$("mark-unread").addEventListener("click", function () {
			markSelected(false);
		});
		$("delete-some").addEventListener("click", function () {
			if (window.confirm("Delete " + state.selected.size +
			    " messages?"))
				remove(Array.from(state.selected));
		});
		$("delete-all").addEventListener("click", function () {
			if (window.confirm("Delete every message you may see?"))
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
		/* live.js: the event stream says something changed. */
		document.addEventListener("mailrepd:refresh", function () {
			refresh();
			refreshFolders();
		});
		window.setInterval(function () {
			if (!document.hidden) {
				refresh();
				refreshFolders();
			}
		}, POLL_MS);
	}

	wire();
	showTab("text");
	refresh();
	refreshFolders();
}());
