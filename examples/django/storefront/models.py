"""The shop's tables: the same shape as the FastAPI shop's (examples/shop/db.py)."""

from __future__ import annotations

from django.db import models


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
