"""The seed's endpoint: POST /conversations creates the conversation of an
agency inquiry, or returns the existing one. 201 when this request created
it, 200 when it existed; every request for one key gets the same id."""
import json

from django.http import JsonResponse

from nodup.django import get_or_create
from seed004.conversations.models import Conversation


def create_conversation(request):
    body = json.loads(request.body)
    conversation, created = get_or_create(
        Conversation, defaults={"subject": body.get("subject", "")},
        context_type=body["context_type"], context_id=body["context_id"],
        created_by_id=body["created_by"])
    return JsonResponse({"id": conversation.pk}, status=201 if created else 200)
