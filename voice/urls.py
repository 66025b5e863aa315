from django.urls import path

from . import views

app_name = "voice"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/new/", views.new_conversation, name="new_conversation"),
    path("c/", views.create_conversation, name="create_conversation"),
    path("c/list/", views.conversation_list, name="conversation_list"),
    path("c/<int:pk>/", views.conversation_detail, name="conversation"),
    path("c/<int:pk>/settings/", views.conversation_settings, name="conversation_settings"),
    path("c/<int:pk>/rename/", views.rename_conversation, name="rename_conversation"),
    path("c/<int:pk>/delete/", views.delete_conversation, name="delete_conversation"),
    path("c/<int:pk>/messages/", views.conversation_messages, name="conversation_messages"),
    path("messages/<int:pk>/audio/", views.message_audio, name="message_audio"),
]
