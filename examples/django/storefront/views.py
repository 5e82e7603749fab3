"""The shop's views, each written to spend its time one known way (see README.md).

| view | written to be |
|---|---|
| ``GET /products/search?q=`` | database-bound: LIKE scan joined to every order line, aggregated |
| ``GET /orders/<id>`` | N+1, database-bound: the template asks each line for product and stock |
| ``POST /checkout`` | CPU-bound: one query, then ~20 ms of pure-Python pricing |
| ``GET /shipping/<id>/quote`` | downstream HTTP: one query, then the rates service (~50 ms) |
| ``GET /products/export.csv`` | a streaming response, read from the database as it streams |
| ``GET /health`` | trivial: a constant answer |
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import requests
from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from shop.pricing import price_cart, priced_products

from storefront.models import Customer, Order, OrderItem, Product
from storefront.seed import SEED_CUSTOMERS, SEED_ORDERS, SEED_PRODUCTS

# One session per process: connection reuse, as a real client would do.
_rates = requests.Session()


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    # Constant, like the FastAPI shop's: a health check the verdict calls "don't migrate"
    # every run (an async view here would cost an event loop per request under WSGI).
    return JsonResponse(
        {
            "status": "ok",
            "products": SEED_PRODUCTS,
            "customers": SEED_CUSTOMERS,
            "orders": SEED_ORDERS,
        }
    )


@require_GET
def search_products(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "")
    if not 1 <= len(q) <= 40:
        return HttpResponseBadRequest("q: 1 to 40 characters")
    rows = (
        Product.objects.filter(Q(name__icontains=q) | Q(description__icontains=q))
        .annotate(
            order_lines=Count("order_items"),
            sold=Coalesce(Sum("order_items__quantity"), 0),
            revenue_cents=Coalesce(
                Sum(F("order_items__quantity") * F("order_items__unit_price_cents")), 0
            ),
        )
        .order_by("-sold", "id")
        .values("id", "name", "category", "price_cents", "order_lines", "sold", "revenue_cents")[
            :20
        ]
    )
    results = list(rows)
    return JsonResponse({"query": q, "count": len(results), "results": results})


@require_GET
def order_page(request: HttpRequest, order_id: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("customer"), pk=order_id)
    # The template calls item.product_with_stock per line: one query (a ledger scan) each.
    return render(request, "storefront/order.html", {"order": order})


@csrf_exempt
@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    try:
        body = json.loads(request.body)
        customer_id = int(body["customer_id"])
        cart: dict[int, int] = {}
        for line in body["items"][:30]:
            product_id, quantity = int(line["product_id"]), int(line["quantity"])
            if not 1 <= quantity <= 20:
                raise ValueError("quantity")
            cart[product_id] = cart.get(product_id, 0) + quantity
    except (ValueError, KeyError, TypeError):
        return HttpResponseBadRequest("expected {customer_id, items: [{product_id, quantity}]}")
    customer = Customer.objects.filter(pk=customer_id).first()
    rows = Product.objects.in_bulk(list(cart))
    if customer is None or not cart or len(rows) != len(cart):
        return JsonResponse({"detail": "unknown customer or product"}, status=404)
    products = priced_products(rows.values())
    receipt = price_cart(
        cart,
        products,
        customer_id=customer.id,
        country=customer.country,
        loyalty_tier=customer.loyalty_tier,
    )
    return JsonResponse(receipt)


@require_GET
def shipping_quote(request: HttpRequest, order_id: int) -> HttpResponse:
    shipment = (
        OrderItem.objects.filter(order_id=order_id)
        .values("order__customer__country")
        .annotate(weight=Sum(F("quantity") * F("product__weight_grams")))
        .order_by("order__customer__country")
        .first()
    )
    if shipment is None:
        return JsonResponse({"detail": "no such order"}, status=404)
    weight, country = int(shipment["weight"]), str(shipment["order__customer__country"])
    try:
        answer = _rates.get(
            f"{settings.SHOP_DOWNSTREAM_URL}/rates",
            params={"weight_grams": weight, "country": country},
            timeout=5,
        )
    except requests.RequestException:
        return JsonResponse({"detail": "shipping rates unavailable"}, status=502)
    if answer.status_code != 200:
        return JsonResponse({"detail": "shipping rates unavailable"}, status=502)
    return JsonResponse(
        {"order_id": order_id, "weight_grams": weight, "country": country, **answer.json()}
    )


@require_GET
def export_products(request: HttpRequest) -> StreamingHttpResponse:
    def rows() -> Iterator[str]:
        yield "id,sku,name,category,price_cents\n"
        for p in Product.objects.order_by("id").iterator(chunk_size=200):
            yield f"{p.id},{p.sku},{p.name},{p.category},{p.price_cents}\n"

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="products.csv"'
    return response
