"""Products and prices."""


def find(products, name):
    return next((p for p in products if p["name"] == name), None)


def price(product, quantity=1):
    return product["price"] * quantity
