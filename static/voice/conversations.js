// The conversation list (a drawer on narrow screens, searchable, grouped by
// date) and the current conversation's rename and delete.

import { getJson, post } from "./http.js";

const layout = document.getElementById("layout");
const sidebar = document.getElementById("sidebar");
const toggle = document.getElementById("drawer-toggle");
const scrim = document.getElementById("scrim");
const listNav = document.getElementById("conversation-list");
const search = document.getElementById("conversation-search");
const title = document.getElementById("conversation-title");
const actions = document.getElementById("conversation-actions");
const renameForm = document.getElementById("rename-form");
const renameInput = document.getElementById("rename-input");
const deleteDialog = document.getElementById("delete-dialog");
const narrow = window.matchMedia("(max-width: 48rem)");

let conversationId = null;
let reportError = () => {};

// --- Drawer ---------------------------------------------------------------------
function setDrawer(open, { focus = true } = {}) {
  layout.classList.toggle("layout--drawer-open", open);
  toggle.setAttribute("aria-expanded", String(open));
  scrim.hidden = !open;
  // Closed off-screen, its links must not take keyboard focus either.
  sidebar.inert = narrow.matches && !open;
  if (!focus) return;
  if (open) search.focus();
  else if (narrow.matches) toggle.focus();
}

export function drawerOpen() {
  return layout.classList.contains("layout--drawer-open");
}

export function closeDrawer() {
  setDrawer(false);
}

// --- List and search -----------------------------------------------------------------
function renderGroups(groups, query) {
  const nodes = [];
  for (const group of groups) {
    const heading = document.createElement("h2");
    heading.className = "conversations__group";
    heading.textContent = group.label;
    const list = document.createElement("ul");
    list.className = "conversations__list";
    for (const conversation of group.conversations) {
      const link = document.createElement("a");
      link.href = conversation.url;
      link.dataset.conversationId = String(conversation.id);
      link.textContent = conversation.title;
      if (String(conversation.id) === conversationId) link.setAttribute("aria-current", "page");
      const item = document.createElement("li");
      item.append(link);
      list.append(item);
    }
    nodes.push(heading, list);
  }
  if (!nodes.length) {
    const empty = document.createElement("p");
    empty.className = "conversations__empty";
    empty.textContent = query ? `No conversation mentions “${query}”.` : "No conversations yet.";
    nodes.push(empty);
  }
  listNav.replaceChildren(...nodes);
}

// Typing searches once the typist pauses this long: a word is one request, not one per key.
const SEARCH_DELAY_MS = 250;
let searchTimer = null;
let searchSeq = 0;
let searched = ""; // the query whose results are shown (or on their way)
async function runSearch() {
  const query = search.value.trim();
  if (query === searched) return; // Enter after the pause, or a space typed: nothing new to ask
  searched = query;
  const seq = ++searchSeq;
  try {
    const found = await getJson(listNav.dataset.listUrl, query ? { q: query } : {});
    if (seq === searchSeq) renderGroups(found.groups, query); // an older answer must not win
  } catch (error) {
    if (seq === searchSeq) searched = null; // asked again next time
    reportError(`Search failed: ${error.message}`);
  }
}

function sidebarLink(id) {
  return listNav.querySelector(`a[data-conversation-id="${id}"]`);
}

/** A conversation was just created by the first query: list it first, as current. */
export function conversationCreated(id, url, name) {
  conversationId = String(id);
  for (const link of listNav.querySelectorAll("a[aria-current]")) link.removeAttribute("aria-current");
  listNav.querySelector(".conversations__empty")?.remove();
  let list = listNav.querySelector(".conversations__list");
  if (!list || listNav.querySelector(".conversations__group")?.textContent !== "Today") {
    const heading = document.createElement("h2");
    heading.className = "conversations__group";
    heading.textContent = "Today";
    list = document.createElement("ul");
    list.className = "conversations__list";
    listNav.prepend(heading, list);
  }
  const link = document.createElement("a");
  link.href = url;
  link.dataset.conversationId = conversationId;
  link.textContent = name;
  link.setAttribute("aria-current", "page");
  const item = document.createElement("li");
  item.append(link);
  list.prepend(item);
  setTitle(name);
  document.getElementById("delete-form").action = `/c/${id}/delete/`;
  actions.hidden = false;
}

// --- Rename and delete ------------------------------------------------------------
/** A conversation created before its first query was known (a spoken one) gets its name. */
export function conversationNamed(name) {
  setTitle(name);
}

function setTitle(name) {
  title.textContent = name;
  document.title = `${name} · Voice chat`;
  document.getElementById("delete-name").textContent = name;
  const link = sidebarLink(conversationId);
  if (link) link.textContent = name;
}

function editTitle(editing) {
  title.hidden = editing;
  actions.hidden = editing;
  renameForm.hidden = !editing;
  if (editing) {
    renameInput.value = title.textContent.trim();
    renameInput.focus();
    renameInput.select();
  } else {
    document.getElementById("rename").focus();
  }
}

async function rename(event) {
  event.preventDefault();
  try {
    const renamed = await post(`/c/${conversationId}/rename/`, { title: renameInput.value });
    setTitle(renamed.title);
    editTitle(false);
  } catch (error) {
    reportError(`Could not rename: ${error.message}`);
  }
}

export function initConversations({ id, onError }) {
  conversationId = id;
  reportError = onError;
  toggle.addEventListener("click", () => setDrawer(!drawerOpen()));
  document.getElementById("drawer-close").addEventListener("click", () => setDrawer(false));
  scrim.addEventListener("click", () => setDrawer(false));
  narrow.addEventListener("change", () => setDrawer(false, { focus: false }));
  setDrawer(false, { focus: false });

  search.closest("form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    runSearch();
  });
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, SEARCH_DELAY_MS);
  });

  document.getElementById("rename").addEventListener("click", () => editTitle(true));
  document.getElementById("rename-cancel").addEventListener("click", () => editTitle(false));
  renameForm.addEventListener("submit", rename);
  renameInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault(); // not a "stop speech"
      editTitle(false);
    }
  });
  document.getElementById("delete").addEventListener("click", () => deleteDialog.showModal());
  document.getElementById("delete-cancel").addEventListener("click", () => deleteDialog.close());
}
