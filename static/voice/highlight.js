// The sentence being spoken, marked in a rendered reply.
//
// Audio chunks name their sentence by offsets in the reply's markdown source,
// but the page shows rendered markdown, whoever rendered it (the server for
// history, markdown.js while streaming). So each rendered text node is aligned
// with the source: rendered text appears in the source in order, with markup
// and escapes between; a node found verbatim takes its place, otherwise its
// characters are matched one by one. Then the text nodes inside the span are
// split and wrapped in <mark>.

// Further than this ahead, a verbatim match is more likely a repeat of the
// same words later on than the place itself: match characters instead.
const MAX_JUMP = 600;
const SKIP = "button, .code-copy";

function textNodes(container) {
  const walker = document.createTreeWalker(container, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) =>
      !node.data.trim() || node.parentElement.closest(SKIP) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  return nodes;
}

/** For each text node, the source offset of each of its characters (-1: not found). */
export function alignToSource(container, source) {
  let cursor = 0;
  return textNodes(container).map((node) => {
    const data = node.data;
    const offsets = new Array(data.length).fill(-1);
    const found = source.indexOf(data, cursor);
    if (found >= 0 && found - cursor <= MAX_JUMP) {
      for (let i = 0; i < data.length; i++) offsets[i] = found + i;
      cursor = found + data.length;
    } else {
      for (let i = 0; i < data.length; i++) {
        const at = source.indexOf(data[i], cursor);
        if (at < 0 || at - cursor > MAX_JUMP) continue;
        offsets[i] = at;
        cursor = at + 1;
      }
    }
    return { node, offsets };
  });
}

/** Wrap the rendered text of source[start, end) in <mark>s; returns them. */
export function markSpan(container, source, start, end) {
  const marks = [];
  for (const { node, offsets } of alignToSource(container, source)) {
    let first = -1;
    let last = -1;
    offsets.forEach((offset, i) => {
      if (offset >= start && offset < end) {
        if (first < 0) first = i;
        last = i;
      }
    });
    if (first < 0) continue;
    const middle = first > 0 ? node.splitText(first) : node;
    if (last + 1 - first < middle.data.length) middle.splitText(last + 1 - first);
    const mark = document.createElement("mark");
    middle.replaceWith(mark);
    mark.append(middle);
    marks.push(mark);
  }
  return marks;
}

/** Undo markSpan: the text goes back into its parent, joined with its neighbours. */
export function clearMarks(container) {
  for (const mark of container.querySelectorAll("mark")) {
    const parent = mark.parentNode;
    mark.replaceWith(...mark.childNodes);
    parent.normalize();
  }
}
