from django.contrib import admin
from django.urls import include, path

from voice.health import health_view
from voice.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("v1/", include("voice.api.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("health", health_view, name="health"),
    path("", include("voice.urls")),
]
