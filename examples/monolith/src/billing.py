"""Invoices and payments."""

TAX_RATE = 0.2
LEDGER = []


def invoice(customer, amount):
    total = round(amount * (1 + TAX_RATE), 2)
    LEDGER.append((customer, total))
    return total


def refund(customer, amount):
    LEDGER.append((customer, -amount))


def balance(customer):
    return sum(total for name, total in LEDGER if name == customer)
