from django import forms

from .models import TITLE_CHARS, Conversation
from .tts import TTSError, get_engine
from .tts.base import MAX_SPEED, MIN_SPEED


class ConversationSettingsForm(forms.ModelForm):
    """Voice and speed, remembered per conversation."""

    speed = forms.FloatField(min_value=MIN_SPEED, max_value=MAX_SPEED)

    class Meta:
        model = Conversation
        fields = ["voice", "speed"]

    def clean_voice(self) -> str:
        voice = self.cleaned_data["voice"]
        if voice:
            try:
                get_engine().get_voice(voice)
            except TTSError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return voice


class ConversationTitleForm(forms.ModelForm):
    """A conversation's name in the sidebar; blank is refused (the first query named it)."""

    title = forms.CharField(max_length=TITLE_CHARS)

    class Meta:
        model = Conversation
        fields = ["title"]
