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
