"""The support agent's tools: a small in-memory shop, each tool with its JSON schema.

Tools return plain dicts; a failure is an MCP-style result, `{"isError": true, "content": …}`,
which the agent must handle like any other answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CUSTOMERS = {
    "ana@example.com": {"name": "Ana Lima", "city": "Paris", "tier": "gold"},
    "bo@example.com": {"name": "Bo Berg", "city": "Oslo", "tier": "standard"},
}
ORDERS = {
    "A1234": {"email": "ana@example.com", "sku": "LAMP-01", "tracking_id": "TRK-9001"},
    "B5678": {"email": "bo@example.com", "sku": "DESK-02", "tracking_id": "TRK-9002"},
}
SHIPMENTS = {
    "TRK-9001": {"status": "delayed", "carrier": "ups", "eta_days": 3},
    "TRK-9002": {"status": "in transit", "carrier": "dhl", "eta_days": 1},
}
STOCK = {"LAMP-01": 12, "DESK-02": 0}
WEATHER = {"paris": "storms", "oslo": "snow"}


def error(message: str) -> dict[str, Any]:
    return {"isError": True, "content": [{"type": "text", "text": message}]}


def lookup_customer(email: str) -> dict[str, Any]:
    found = CUSTOMERS.get(email.strip().lower())
    return {"email": email, **found} if found else error(f"no customer with email {email!r}")


def lookup_order(order_id: str) -> dict[str, Any]:
    found = ORDERS.get(order_id.strip().upper())
    return {"order_id": order_id, **found} if found else error(f"no order {order_id!r}")


def track_shipment(tracking_id: str) -> dict[str, Any]:
    found = SHIPMENTS.get(tracking_id.strip().upper())
    return {"tracking_id": tracking_id, **found} if found else error(f"unknown {tracking_id!r}")


def get_weather(city: str) -> dict[str, Any]:
    sky = WEATHER.get(city.strip().lower())
    return {"city": city, "forecast": sky} if sky else error(f"no forecast for {city!r}")


def check_inventory(sku: str) -> dict[str, Any]:
    count = STOCK.get(sku.strip().upper())
    return {"sku": sku, "in_stock": count} if count is not None else error(f"unknown sku {sku!r}")


_TICKETS: list[dict[str, Any]] = []


def create_ticket(summary: str, priority: str) -> dict[str, Any]:
    _TICKETS.append({"summary": summary, "priority": priority})
    return {"ticket_id": f"T-{len(_TICKETS):04d}", "priority": priority}


def offer_compensation(kind: str, reason: str) -> dict[str, Any]:
    return {"offered": kind, "reason": reason}


def _schema(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


STRING = {"type": "string"}
SPECS: list[dict[str, Any]] = [
    {"name": "lookup_customer", "description": "Find a customer by email address.",
     "parameters": _schema(email=STRING)},
    {"name": "lookup_order", "description": "Find an order by its id (like A1234).",
     "parameters": _schema(order_id=STRING)},
    {"name": "track_shipment", "description": "Where a shipment is, by tracking id (TRK-…).",
     "parameters": _schema(tracking_id=STRING)},
    {"name": "get_weather", "description": "The weather forecast in a city.",
     "parameters": _schema(city=STRING)},
    {"name": "check_inventory", "description": "How many of a product (by sku) are in stock.",
     "parameters": _schema(sku=STRING)},
    {"name": "create_ticket", "description": "Open a support ticket.",
     "parameters": _schema(summary=STRING,
                           priority={"type": "string", "enum": ["low", "normal", "high"]})},
    {"name": "offer_compensation", "description": "Offer the customer something for the trouble.",
     "parameters": _schema(kind={"type": "string", "enum": ["voucher", "refund", "reship"]},
                           reason=STRING)},
]  # fmt: skip

TOOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "lookup_customer": lookup_customer,
    "lookup_order": lookup_order,
    "track_shipment": track_shipment,
    "get_weather": get_weather,
    "check_inventory": check_inventory,
    "create_ticket": create_ticket,
    "offer_compensation": offer_compensation,
}
