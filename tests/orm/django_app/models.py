from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

class Team(models.Model):
    title = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    score = models.IntegerField(null=True)
    ratio = models.FloatField(null=True)
    class Meta:
        constraints = [models.UniqueConstraint(fields=["title"], condition=Q(is_active=True), name="uniq_active_title")]

class Member(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE)
    name = models.CharField(max_length=50)

# A generic relation, as Django's documentation writes one (TaggedItem): no
# foreign key says which table object_id points into; content_type does.
class Comment(models.Model):
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=200)
