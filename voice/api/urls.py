from django.urls import path

from . import views

app_name = "api"

urlpatterns = [
    path("voice-synthesis/voices", views.voices, name="voices"),
    path("voice-synthesis/synthesize", views.synthesize, name="synthesize"),
    path("audio/speech", views.speech, name="speech"),
]
