from django.urls import path

from storefront import views

urlpatterns = [
    path("health", views.health),
    path("products/search", views.search_products),
    path("products/export.csv", views.export_products),
    path("orders/<int:order_id>", views.order_page),
    path("checkout", views.checkout),
    path("shipping/<int:order_id>/quote", views.shipping_quote),
]
