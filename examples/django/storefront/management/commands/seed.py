from django.core.management.base import BaseCommand

from storefront.seed import seed


class Command(BaseCommand):
    help = "Create the example shop's tables and seed them (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        self.stdout.write(f"{seed()} products")
