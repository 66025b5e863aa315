"""``GET /health``: whether this process has finished warming up, for load balancers and scripts.

200 once start-up is over (models loaded, one phrase said per synthesis
process), 503 before. The body says how each start-up step went; a step that
failed is logged, and the process serves anyway (replies then report what is
missing), so it still answers 200.
"""

from django.http import HttpRequest, JsonResponse

from . import lifecycle


def health_view(request: HttpRequest) -> JsonResponse:
    ready = lifecycle.warmed.is_set()
    return JsonResponse({"ready": ready, "steps": dict(lifecycle.status)}, status=200 if ready else 503)
