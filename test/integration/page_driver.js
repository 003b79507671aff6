/*
 * Runs web/app.js under node against a live server, on a small stand-in
 * for the DOM (the elements of web/index.html by id), clicks through
 * the page and prints what it shows as JSON: used by test_http_page.py
 * where no browser is installed.  Setting innerHTML or outerHTML on any
 * element is recorded as a failure.
 *
 * usage: node page_driver.js BASE_URL APP_JS INDEX_HTML
 */
"use strict";
const fs = require("fs");
const vm = require("vm");

const [base, appPath, indexPath] = process.argv.slice(2);
const markup = [];

class Element {
	constructor(tag, id) {
		this.tagName = tag.toUpperCase();
		this.id = id || "";
		this.children = [];
		this.text = "";
		this.hidden = false;
		this.disabled = false;
		this.className = "";
		this.dataset = {};
		this.attrs = {};
		this.listeners = {};
		this.value = "";
		this.title = "";
		const self = this;
		this.classList = {
			add(c) { const s = self.classes(); s.add(c); self.sync(s); },
			toggle(c, on) {
				const s = self.classes();
				if (on === undefined ? !s.has(c) : on) s.add(c);
				else s.delete(c);
				self.sync(s);
			},
			contains(c) { return self.classes().has(c); }
		};
	}
	classes() { return new Set(this.className.split(" ").filter(Boolean)); }
	sync(s) { this.className = [...s].join(" "); }
	get textContent() {
		return this.text + this.children.map((c) => c.textContent).join("");
	}
	set textContent(v) { this.text = String(v); this.children = []; }
	set innerHTML(v) { markup.push(["innerHTML", this.id]); }
	set outerHTML(v) { markup.push(["outerHTML", this.id]); }
	insertAdjacentHTML() { markup.push(["insertAdjacentHTML", this.id]); }
	append(...els) { this.children.push(...els); }
	replaceChildren(...els) { this.text = ""; this.children = els; }
	setAttribute(k, v) { this.attrs[k] = String(v); }
	getAttribute(k) { return this.attrs[k]; }
	addEventListener(type, fn) {
		(this.listeners[type] = this.listeners[type] || []).push(fn);
	}
	fire(type) {
		const ev = { type, preventDefault() {}, key: "" };
		(this.listeners[type] || []).forEach((fn) => fn(ev));
	}
	all() {
		return [this].concat(...this.children.map((c) => c.all()));
	}
}

const byId = {};
const html = fs.readFileSync(indexPath, "utf8");
for (const m of html.matchAll(/<([a-z0-9]+)([^>]*)>/g)) {
	const id = /\bid="([^"]+)"/.exec(m[2]);
	const tab = /\bdata-tab="([^"]+)"/.exec(m[2]);
	const cls = /\bclass="([^"]+)"/.exec(m[2]);
	const e = new Element(m[1], id ? id[1] : "");
	if (tab) e.dataset.tab = tab[1];
	if (cls) e.className = cls[1];
	if (/\shidden[\s>]/.test(m[2] + ">")) e.hidden = true;
	if (id) byId[id[1]] = e;
	if (tab) byId["tab:" + tab[1]] = e;
}
const tabs = Object.keys(byId).filter((k) => k.startsWith("tab:"))
    .map((k) => byId[k]);
const panes = Object.values(byId).filter((e) => e.classList.contains("tab"));

const documentListeners = {};
globalThis.document = {
	hidden: false,
	getElementById: (id) => byId[id] || null,
	createElement: (tag) => new Element(tag),
	querySelectorAll(sel) {
		const found = {
			"#tabs button": tabs,
			".tab": panes,
			"#rows tr": byId.rows.children
		}[sel];
		if (!found)
			throw new Error("selector not in the stand-in: " + sel);
		return found;
	},
	addEventListener(type, fn) { documentListeners[type] = fn; }
};
globalThis.window = {
	confirm: () => true,
	setInterval: (fn, ms) => setInterval(fn, ms)
};
const realFetch = fetch;
const asked = [];
globalThis.fetch = (path, options) => {
	asked.push([options && options.method || "GET", path]);
	return realFetch(base + path, options);
};

vm.runInThisContext(fs.readFileSync(appPath, "utf8"), { filename: appPath });

/* Waits until ok() holds (the page answered), at most 30 s. */
async function until(ok) {
	for (let i = 0; i < 600 && !ok(); i++)
		await new Promise((r) => setTimeout(r, 50));
}
const rows = () => byId.rows.children.map((tr) =>
    tr.children.map((td) => td.textContent));
const range = () => byId.range.textContent;

async function main() {
	const out = {};
	await until(() => rows().length > 0);
	out.rows = rows();
	out.range = range();
	out.older_disabled = byId.older.disabled;
	byId.older.fire("click");
	await until(() => range() !== out.range);
	out.page2 = rows();
	out.range2 = range();
	byId.newer.fire("click");
	await until(() => range() === out.range);
	byId.rows.children[0].fire("click");
	await until(() => !byId.view.hidden);
	out.view_hidden = byId.view.hidden;
	out.subject = byId["v-subject"].textContent;
	out.from = byId["v-from"].textContent;
	out.text = byId["tab-text"].textContent;
	byId["tab:headers"].fire("click");
	await until(() => byId["header-rows"].children.length > 0);
	out.headers = byId["header-rows"].children.map((tr) =>
	    tr.children.map((td) => td.textContent));
	byId["tab:raw"].fire("click");
	await until(() => byId["tab-raw"].textContent !== "");
	out.raw = byId["tab-raw"].textContent;
	out.raw_hidden = byId["tab-raw"].hidden;
	out.text_hidden = byId["tab-text"].hidden;
	byId.query.value = "subject:hostile";
	byId.search.fire("submit");
	await until(() => range().endsWith(" found"));
	out.found = rows();
	byId.clear.fire("click");
	await until(() => range() === out.range);
	byId.rows.children[0].fire("click");
	await until(() => !byId.view.hidden);
	byId["delete-one"].fire("click");
	await until(() => byId.view.hidden && range() !== out.range);
	out.after_delete = range();
	byId["delete-all"].fire("click");
	await until(() => rows().length === 0);
	out.after_all = range();
	out.status = byId.status.textContent;
	out.markup = markup;
	out.asked = asked;
	process.stdout.write(JSON.stringify(out));
	process.exit(0);
}
main().catch((e) => {
	process.stdout.write(JSON.stringify({ error: String(e.stack) }));
	process.exit(1);
});
