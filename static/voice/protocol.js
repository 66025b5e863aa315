// The chat socket's wire format; see docs/protocol.md.

const decoder = new TextDecoder();

/** Split a binary audio frame into its JSON header and its audio bytes. */
export function decodeAudioFrame(arrayBuffer) {
  const view = new DataView(arrayBuffer);
  const headerLength = view.getUint32(0, false);
  const header = JSON.parse(decoder.decode(new Uint8Array(arrayBuffer, 4, headerLength)));
  return { header, data: new Uint8Array(arrayBuffer, 4 + headerLength) };
}

/** The audio bytes of a base64 `audio.chunk` JSON event. */
export function decodeBase64Chunk(event) {
  const binary = atob(event.data);
  const data = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) data[i] = binary.charCodeAt(i);
  const { data: _ignored, type: _type, ...header } = event;
  return { header, data };
}

export function socketUrl(conversationId) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/chat/${conversationId}/`;
}
