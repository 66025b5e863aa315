"""Hands-free in Chromium with a speaker: the page's own playback comes back into its microphone.

No device and no browser echo cancellation: the page's microphone is a
MediaStream built in the page from what it plays (every node it connects to
its speakers is tapped), delayed, attenuated and laid over a -60 dBFS noise
floor, as a speaker beside the microphone would send it back. A synthetic
stream gets no echo cancellation from the browser, which is also what many
external speakers and Bluetooth devices get. The server's echo canceller is
on (the default); nothing is pressed after the question is typed.
"""

from __future__ import annotations

import pytest

from voice.tests import pages
from voice.tests.pages import log_in, new_context, send, wait_for_reply, watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.realtime]
# One Daphne (its echo canceller on, the default) and one Chromium for the module.
server, browser = pages.server, pages.browser

# Read back in Piper's voice: about 7 s.
REPLY = (
    "The museum is open every day except Monday. Tickets are cheaper for students and children, "
    "and the garden is free on Sunday mornings."
)
HEARD = 90_000  # ms

# The room: the page's playback, tapped where it leaves for the speakers, comes back into the microphone.
ROOM = """([delay, gain, floor]) => {
  const contexts = [];
  const Native = window.AudioContext;
  window.AudioContext = class extends Native {
    constructor(...args) { super(...args); contexts.push(this); }
  };
  const connect = AudioNode.prototype.connect;
  AudioNode.prototype.connect = function (target, ...rest) {
    const result = connect.call(this, target, ...rest);
    if (target instanceof AudioDestinationNode && !this.context.isRoom) {
      this.context.speakers ??= this.context.createMediaStreamDestination();
      connect.call(this, this.context.speakers);
    }
    return result;
  };
  window.room = { microphones: 0, heardPlayback: false };
  navigator.mediaDevices.getUserMedia = async () => {
    const room = new Native();
    room.isRoom = true;
    const microphone = room.createMediaStreamDestination();
    const noise = room.createBuffer(1, room.sampleRate * 2, room.sampleRate);
    const samples = noise.getChannelData(0);
    for (let i = 0; i < samples.length; i++) samples[i] = (Math.random() * 2 - 1) * floor * Math.sqrt(3);
    const hiss = room.createBufferSource();
    hiss.buffer = noise;
    hiss.loop = true;
    connect.call(hiss, microphone);
    hiss.start();
    const player = contexts.find((context) => context.speakers);
    if (player) {
      const speaker = room.createMediaStreamSource(player.speakers.stream);
      const path = room.createDelay(1);
      path.delayTime.value = delay;
      const level = room.createGain();
      level.gain.value = gain;
      connect.call(speaker, path);
      connect.call(path, level);
      connect.call(level, microphone);
      window.room.heardPlayback = true;
    }
    window.room.microphones += 1;
    return microphone.stream;
  };
}"""


def room_page(browser, server, delay: float, gain_db: float):
    context = new_context(browser)
    page = context.new_page()
    page.add_init_script(f"({ROOM})({[delay, 10 ** (gain_db / 20), 10 ** (-60 / 20)]})")
    errors = watch_errors(page)
    log_in(page, server)
    return context, page, errors


def user_queries(server) -> list[str]:
    return [text for (text,) in server.site.fetch("SELECT text FROM voice_message WHERE role = 'user' ORDER BY id")]


@pytest.mark.parametrize("gain_db, delay", [(-9, 0.1)])
def test_the_replys_echo_through_a_speaker_is_cancelled_and_asks_nothing(browser, server, gain_db, delay):
    context, page, errors = room_page(browser, server, delay, gain_db)
    before = user_queries(server)
    page.get_by_role("button", name="Hands-free").click()
    page.wait_for_function("window.voiceHandsFree.listening", timeout=30_000)
    assert page.evaluate("window.room.heardPlayback")  # the microphone hears the page's speakers
    send(page, REPLY)
    reply = wait_for_reply(page, 0)
    # Its echo came back into the microphone all along, and two seconds after its end nothing was asked.
    sent = page.evaluate("window.voiceHandsFree.bytesSent")
    page.wait_for_function(f"window.voiceHandsFree.bytesSent >= {sent + 2 * 16000 * 2}", timeout=HEARD)
    assert user_queries(server)[len(before) :] == [REPLY]  # the typed one only
    assert page.locator(f'[data-message-id="{reply}"]').get_attribute("data-status") == "complete"
    assert [t for t in page.evaluate("window.voiceHandsFree.turns") if t["phase"] == "ended"] == []
    assert page.evaluate("window.voiceHandsFree.positionsSent") > 0
    assert page.locator("#handsfree-note").is_hidden()  # the canceller runs
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"
