"""Hands-free mode: an open microphone, turns found by the server, barge-in by voice.

- ``vad``: Silero voice activity, one 32 ms window at a time (the ONNX file
  faster-whisper ships: no extra package).
- ``detector``: the end-of-turn rule on top of it (settings VOICE_HANDSFREE_*).
- ``completeness``: whether a turn's words sound finished (the bundled model
  judges): the rule then ends it sooner, or waits longer.
- ``echo``: whether words heard are the assistant's own, an acknowledgement,
  or a request.
- ``playback``: what the assistant is saying on the page now, estimated from
  the audio this socket forwards.
- ``bargein``: what a voice does to the reply that is playing (pause, go on, stop), decided in one place.
- ``session``: one listening socket's turns, from audio to a stored query.
- ``limits``: how many sockets of a user may listen at once.

The chat socket (``voice.consumers``) creates a ``HandsFreeSession`` on
``listen.start``; docs/protocol.md ("Hands-free") and docs/handsfree.md say
what it does and why.
"""
