// A reply's markdown as DOM nodes, built from marked's tokens: never innerHTML,
// so nothing a model writes can become markup. Same features as the server's
// voice/rendering.py: CommonMark + GFM tables and strikethrough, raw HTML shown
// as text, links only to http(s)/mailto (new tab, noopener noreferrer), images
// as their alt text, headings two levels down.

import { Lexer, getDefaults } from "./vendor/marked.esm.js";

const OPTIONS = { ...getDefaults(), gfm: true, breaks: false };
const SAFE_LINK = /^(https?:|mailto:)/i;
const HEADING_OFFSET = 2;
// CommonMark knows every HTML entity; models use a handful. Others stay as written.
const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0", copy: "©", reg: "®",
  hellip: "…", mdash: "—", ndash: "–", lsquo: "‘", rsquo: "’", ldquo: "“", rdquo: "”", times: "×", deg: "°" };

export function isSafeHref(href) {
  return typeof href === "string" && SAFE_LINK.test(href.trim());
}

function decodeEntities(text) {
  return text.replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z][a-z0-9]{1,31});/gi, (whole, name) => {
    if (name[0] !== "#") return ENTITIES[name] ?? whole;
    const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "\ufffd";
  });
}

function element(tag, children = [], attributes = {}) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

const text = (value) => document.createTextNode(value);

function inline(tokens = []) {
  return tokens.flatMap(inlineToken);
}

function inlineToken(token) {
  switch (token.type) {
    case "text":
      return token.tokens ? inline(token.tokens) : [text(decodeEntities(token.text))];
    case "escape":
      return [text(token.text)];
    case "strong":
      return [element("strong", inline(token.tokens))];
    case "em":
      return [element("em", inline(token.tokens))];
    case "del":
      return [element("s", inline(token.tokens))];
    case "codespan":
      return [element("code", [text(token.text)])];
    case "br":
      return [element("br")];
    case "link": {
      // GFM's bare-URL links are not CommonMark: shown as written, as the server does.
      const written = token.raw.startsWith("[") || token.raw.startsWith("<");
      if (!written || !isSafeHref(token.href)) return [text(token.raw)];
      const attributes = { href: token.href, target: "_blank", rel: "noopener noreferrer" };
      if (token.title) attributes.title = token.title;
      return [element("a", inline(token.tokens), attributes)];
    }
    case "image":
      return [text(decodeEntities(token.text))];
    case "checkbox":
      return [text(token.checked ? "[x] " : "[ ] ")];
    default:
      // Raw HTML ("html") and anything unknown: the characters as written.
      return [text(token.raw ?? token.text ?? "")];
  }
}

function blocks(tokens = []) {
  return tokens.flatMap(block);
}

function block(token) {
  switch (token.type) {
    case "space":
    case "def":
      return [];
    case "paragraph":
      return [element("p", trimmed(inline(token.tokens)))];
    case "text":
      return token.tokens ? inline(token.tokens) : [text(decodeEntities(token.text))];
    case "heading":
      return [element(`h${Math.min(token.depth + HEADING_OFFSET, 6)}`, trimmed(inline(token.tokens)))];
    case "code": {
      const attributes = token.lang ? { class: `language-${token.lang.split(/\s/)[0]}` } : {};
      return [element("pre", [element("code", [text(`${token.text}\n`)], attributes)])];
    }
    case "blockquote":
      return [element("blockquote", blocks(token.tokens))];
    case "hr":
      return [element("hr")];
    case "list": {
      const attributes = token.ordered && token.start !== "" && token.start !== 1 ? { start: String(token.start) } : {};
      const items = token.items.map((item) => element("li", item.loose ? blocks(item.tokens) : listItem(item.tokens)));
      return [element(token.ordered ? "ol" : "ul", items, attributes)];
    }
    case "table":
      return [table(token)];
    case "html":
      return [element("p", [text(token.raw.trimEnd())])];
    default:
      return [text(token.raw ?? "")];
  }
}

/** CommonMark drops a paragraph's leading and trailing spaces (marked keeps them). */
function trimmed(nodes) {
  const first = nodes[0];
  const last = nodes.at(-1);
  if (first?.nodeType === Node.TEXT_NODE) first.data = first.data.trimStart();
  if (last?.nodeType === Node.TEXT_NODE) last.data = last.data.trimEnd();
  return nodes;
}

function listItem(tokens) {
  // A tight item holds text and checkbox tokens inline, and maybe nested blocks.
  return tokens.flatMap((token) => (token.type === "text" || token.type === "checkbox" ? inlineToken(token) : block(token)));
}

function cell(tag, data) {
  const node = element(tag, inline(data.tokens));
  if (data.align) node.style.textAlign = data.align;
  return node;
}

function table(token) {
  const head = element("thead", [element("tr", token.header.map((data) => cell("th", data)))]);
  const rows = token.rows.map((row) => element("tr", row.map((data) => cell("td", data))));
  return element("table", rows.length ? [head, element("tbody", rows)] : [head]);
}

/** The reply's markdown as a fragment of DOM nodes. */
export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  fragment.append(...blocks(Lexer.lex(source, OPTIONS)));
  return fragment;
}
