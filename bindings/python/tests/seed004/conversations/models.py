"""The seed's schema in Django: a conversation per (agency inquiry, user),
unique only for context_type 'agency_inquiry' (the seed's partial UNIQUE ...
WHERE context_type = 'agency_inquiry'), and the models of seed 001
(a Conference get_or_create'd without a constraint; a Participant with one)."""
import uuid

from django.db import models
from django.db.models import Q


class Account(models.Model):
    name = models.CharField(max_length=50)


class Conversation(models.Model):
    context_type = models.CharField(max_length=30)
    context_id = models.IntegerField()
    created_by = models.ForeignKey(Account, on_delete=models.CASCADE)
    subject = models.CharField(max_length=100, default="")
    is_open = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["context_type", "context_id", "created_by"],
                condition=Q(context_type="agency_inquiry"),
                name="unique_agency_user_conversation"),
        ]


class Team(models.Model):
    """A partial constraint on a boolean: the condition's text differs per engine."""
    title = models.CharField(max_length=50)
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["title"], condition=Q(is_active=True),
                                               name="uniq_active_title")]


class Conference(models.Model):
    """Seed 001 before its fix: nothing makes (conference_id, app) unique."""
    conference_id = models.CharField(max_length=64)
    app = models.ForeignKey(Account, on_delete=models.CASCADE)


class Participant(models.Model):
    participant_id = models.CharField(max_length=64)
    app = models.ForeignKey(Account, on_delete=models.CASCADE)
    code = models.CharField(max_length=10, unique=True, null=True)

    class Meta:
        unique_together = (("participant_id", "app"),)


class Invite(models.Model):
    """A UUID primary key made by Python (Django inserts it; nodup must too)."""
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    email = models.CharField(max_length=100, unique=True)
