// What the chat page's modules share about this tab's conversation: which it
// is, and where its Stop presses and its queries' replies stand.

export const session = {
  /** The conversation's id (a string), or null until the first query creates it. */
  conversationId: document.getElementById("chat").dataset.conversationId || null,
  /** Stop presses so far: a reply asked before the latest one is not played. */
  stops: 0,
  /** `stops` when the query whose reply comes next was stored (null: none is expected). */
  replyWanted: null,
  /** performance.now() when Enter was pressed (or talking ended), until the reply's first sound. */
  sentAt: null,
};
