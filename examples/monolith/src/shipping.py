"""Parcels and delivery estimates."""

CARRIERS = ["post", "courier"]


def estimate_days(distance_km, carrier="post"):
    return 1 + distance_km // (300 if carrier == "courier" else 150)


def label(address, carrier="post"):
    return f"{carrier.upper()}: {address}"
