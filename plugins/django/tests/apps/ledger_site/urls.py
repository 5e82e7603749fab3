from django.urls import path

from ledger_site import views

urlpatterns = [
    path("sync", views.sync_view),
    path("async", views.async_view),
    path("hello", views.hello),
    path("warm", views.warm),
    path("busy_view", views.busy_view),
    path("busy_sleep", views.busy_sleep),
]
