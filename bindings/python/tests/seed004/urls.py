from django.urls import path

from seed004.conversations import views

urlpatterns = [path("conversations", views.create_conversation)]
