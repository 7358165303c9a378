"""Customer attributes as categorical features, and days since signup.

Each attribute listed in ``data.customers.attributes`` becomes a categorical feature
under its own name. ``days_since_signup`` is whole days from ``signed_up_at`` to
``as_of``.

Missing values: null when the customer is not in the customers table or the value is
null; ``days_since_signup`` is also null when ``signed_up_at`` is not before ``as_of``
(a signup in the future of the snapshot is not known then).

Attributes are taken as they are in the customers table: if they change over time
(a loyalty tier after a churn), they can leak the future; only use stable ones.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from churnkit.features._exprs import days_since
from churnkit.features.spec import FeatureSpec


def names(spec: FeatureSpec) -> list[str]:
    return [*spec.attributes, *(["days_since_signup"] if spec.signup else [])]


def add_attributes(population: ir.Table, customers: ir.Table, spec: FeatureSpec) -> ir.Table:
    """Left-join the customer attributes onto ``population``."""
    columns = {a: customers[a].cast("string") for a in spec.attributes}
    if spec.signup:
        columns["_signed_up_at"] = customers.signed_up_at.cast("timestamp")
    right = customers.select(customer_id=customers.customer_id, **columns)
    joined = population.left_join(right, "customer_id").drop("customer_id_right")
    if not spec.signup:
        return joined
    known = joined._signed_up_at < joined.as_of_ts
    return joined.mutate(
        days_since_signup=ibis.ifelse(
            known, days_since(joined.as_of, joined._signed_up_at), ibis.null("int64")
        )
    )
