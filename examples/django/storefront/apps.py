from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    name = "storefront"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from shop.pricing import risk_passes

        risk_passes()  # checkout's CPU cost calibrated at startup, not in the first checkout
