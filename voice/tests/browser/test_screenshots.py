"""The README's screenshots: `make screenshots` writes them into docs/.

Skipped unless VOICE_SCREENSHOT_DIR names the folder to write to, so that the
suite never changes tracked files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voice.tests import pages
from voice.tests.pages import DESKTOP, PHONE, log_in, new_context

OUT = os.environ.get("VOICE_SCREENSHOT_DIR", "")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(not OUT, reason="`make screenshots` sets VOICE_SCREENSHOT_DIR")]
server, browser = pages.server, pages.browser

# A conversation as a person might have it; the last reply is spoken by the
# site's own engine, so its player is real.
SEED = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone
from voice import audio
from voice.models import Conversation, Message
from voice.tts import get_engine

owner = get_user_model().objects.get(username="demo")
now = timezone.now()
for title, days in [("Sourdough starter", 1), ("Tea or coffee in the morning?", 3), ("A birthday poem for Sam", 12),
                    ("Learning the ukulele", 45)]:
    old = Conversation.objects.create(owner=owner, title=title)
    Conversation.objects.filter(pk=old.pk).update(updated_at=now - timedelta(days=days))
trip = Conversation.objects.create(owner=owner, title="Three days in Lisbon")
turns = [
    ("user", "What should I pack for three days in Lisbon in April?"),
    ("assistant", "April in Lisbon is mild, around **18 °C**, with the odd shower. Pack:\\n\\n"
     "- comfortable shoes for the hills and cobbles\\n- a light rain jacket\\n- layers for cool evenings\\n\\n"
     "Leave the umbrella: the wind makes it more trouble than it is worth."),
    ("user", "And how do I get from the airport to the centre?"),
    ("assistant", "Take the **metro**: the red line leaves from the airport and reaches the centre in about "
     "25 minutes.\\n\\n| Option | Time | Cost |\\n|:--|--:|--:|\\n| Metro | 25 min | 1.85 € |\\n"
     "| Taxi | 20 min | about 15 € |\\n\\nBuy a *Viva Viagem* card at the station first."),
]
for role, text in turns:
    message = Message.objects.create(conversation=trip, role=role, text=text)
spoken = "Take the metro: the red line leaves from the airport and reaches the centre in about 25 minutes."
chunks = list(get_engine().synthesize(spoken))
pcm = b"".join(chunk.data for chunk in chunks)
rate = chunks[0].sample_rate
message.audio_format, message.duration_ms = "wav", round(len(pcm) / 2 / rate * 1000)
message.ttfa_ms, message.engine = 160, get_engine().name
message.audio.save("lisbon.wav", ContentFile(audio.wav_bytes(pcm, rate)))
print(trip.get_absolute_url())
"""


@pytest.fixture(scope="module")
def conversation_path(server):
    return server.site.shell(SEED)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("size", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_screenshot(browser, server, conversation_path, scheme, size, viewport):
    context = new_context(browser, viewport, color_scheme=scheme, phone=size == "phone")
    page = context.new_page()
    log_in(page, server, conversation_path)
    # The last reply part-way through a replay: the player shows its progress.
    page.get_by_role("button", name="Play reply 2").click()
    page.wait_for_function("window.voiceReplay.audio.currentTime > 1.2")
    page.get_by_role("button", name="Pause reply 2").click()
    page.locator("#query").fill("Is the tram worth it too?")
    page.locator("#query").blur()
    name = f"screenshot-{size}{'-dark' if scheme == 'dark' else ''}.png"
    page.screenshot(path=str(Path(OUT) / name))
    context.close()
