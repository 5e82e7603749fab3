"""The shop's tables: the same shape as the FastAPI shop's (examples/shop/db.py).

The stock ledger (:class:`StockMove`) has no index on its product, as in the FastAPI
shop: a product's stock level is a scan of the whole ledger inside the database.
"""

from __future__ import annotations

from django.db import models
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField()
    category = models.CharField(max_length=40)
    price_cents = models.IntegerField()
    weight_grams = models.IntegerField()


class Customer(models.Model):
    name = models.CharField(max_length=80)
    country = models.CharField(max_length=2)
    postcode = models.CharField(max_length=12)
    loyalty_tier = models.IntegerField(default=0)


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    status = models.CharField(max_length=16)


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="order_items")
    quantity = models.IntegerField()
    unit_price_cents = models.IntegerField()

    def product_with_stock(self) -> Product:
        """This line's product with its stock level: one query, a scan of the stock ledger.
        The order template calls it per line: the N+1 of GET /orders/<id>."""
        stock = (
            StockMove.objects.filter(product=OuterRef("pk"))
            .values("product")
            .annotate(total=Sum("quantity"))
            .values("total")
        )
        return Product.objects.annotate(in_stock=Coalesce(Subquery(stock), 0)).get(
            pk=self.product_id
        )


class StockMove(models.Model):
    # db_index=False on purpose (module docstring): a stock lookup scans the ledger.
    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="stock_moves", db_index=False
    )
    quantity = models.IntegerField()
    reason = models.CharField(max_length=12)
