# ruff: noqa
# The floor of issue 16, kept as written by the team (one hand-written DuckDB statement).
"""A hand-written DuckDB query computing most of churnkit's default feature set at one as_of,
on data written by `churnkit generate`: RFM windows, lifetime totals, cadence (mean/std gap),
trend, returns, breadth, engagement counts per event type in 30/90 days, days since the last
event per type, last NPS, customer attributes, R/F/M quintiles.

Usage, as a whole process:  python rich_floor.py DATA_DIR AS_OF OUT.parquet
It is the floor that `churnkit features` is compared with: the same work, written by hand as one
SQL statement, with nothing around it. Compare CPU time of the two processes (for example with
/usr/bin/time), run alternately, and quote the median ratio."""

import sys, duckdb

data, as_of, out = sys.argv[1], sys.argv[2], sys.argv[3]
A = f"TIMESTAMP '{as_of}'"
q = f"""
WITH o AS (SELECT customer_id, ordered_at, amount, status, category, channel
           FROM read_parquet('{data}/orders.parquet') WHERE ordered_at < {A}),
q AS (SELECT * FROM o WHERE status = 'completed'),
g AS (SELECT customer_id, ordered_at - lag(ordered_at) OVER (PARTITION BY customer_id ORDER BY ordered_at) gap FROM q),
gs AS (SELECT customer_id, avg(epoch(gap))/86400 mean_gap, stddev_pop(epoch(gap))/86400 std_gap FROM g GROUP BY 1),
pop AS (SELECT customer_id,
   date_diff('day', max(ordered_at), {A}) recency_days, date_diff('day', min(ordered_at), {A}) tenure_days,
   count(*) orders_lifetime, sum(amount) revenue_lifetime, avg(amount) mean_order_value, max(amount) max_order_value,
   count(*) FILTER (WHERE ordered_at >= {A} - INTERVAL 30 DAY) orders_30d, sum(amount) FILTER (WHERE ordered_at >= {A} - INTERVAL 30 DAY) revenue_30d,
   count(*) FILTER (WHERE ordered_at >= {A} - INTERVAL 90 DAY) orders_90d, sum(amount) FILTER (WHERE ordered_at >= {A} - INTERVAL 90 DAY) revenue_90d,
   count(*) FILTER (WHERE ordered_at >= {A} - INTERVAL 180 DAY) orders_180d, sum(amount) FILTER (WHERE ordered_at >= {A} - INTERVAL 180 DAY) revenue_180d,
   count(*) FILTER (WHERE ordered_at >= {A} - INTERVAL 365 DAY) orders_365d, sum(amount) FILTER (WHERE ordered_at >= {A} - INTERVAL 365 DAY) revenue_365d,
   count(*) FILTER (WHERE ordered_at >= {A} - INTERVAL 180 DAY AND ordered_at < {A} - INTERVAL 90 DAY) orders_prev_90d
 FROM q GROUP BY 1 HAVING max(ordered_at) >= {A} - INTERVAL 365 DAY),
ret AS (SELECT customer_id, count(*) FILTER (WHERE status='returned') returns_lifetime,
   count(*) FILTER (WHERE status='cancelled') cancellations_lifetime,
   count(DISTINCT category) distinct_categories, count(DISTINCT channel) distinct_channels FROM o GROUP BY 1),
e AS (SELECT customer_id, event_type, occurred_at, value FROM read_parquet('{data}/events.parquet') WHERE occurred_at < {A}),
ea AS (SELECT customer_id,
   count(*) FILTER (WHERE event_type='session' AND occurred_at >= {A} - INTERVAL 30 DAY) session_30d,
   count(*) FILTER (WHERE event_type='session' AND occurred_at >= {A} - INTERVAL 90 DAY) session_90d,
   count(*) FILTER (WHERE event_type='email_open' AND occurred_at >= {A} - INTERVAL 30 DAY) email_open_30d,
   count(*) FILTER (WHERE event_type='email_open' AND occurred_at >= {A} - INTERVAL 90 DAY) email_open_90d,
   count(*) FILTER (WHERE event_type='support_ticket' AND occurred_at >= {A} - INTERVAL 90 DAY) ticket_90d,
   count(*) FILTER (WHERE event_type='nps' AND occurred_at >= {A} - INTERVAL 90 DAY) nps_90d,
   date_diff('day', max(occurred_at) FILTER (WHERE event_type='session'), {A}) days_since_last_session,
   date_diff('day', max(occurred_at) FILTER (WHERE event_type='email_open'), {A}) days_since_last_email_open,
   date_diff('day', max(occurred_at) FILTER (WHERE event_type='support_ticket'), {A}) days_since_last_ticket,
   arg_max(value, occurred_at) FILTER (WHERE event_type='nps') last_nps
 FROM e GROUP BY 1),
c AS (SELECT * FROM read_parquet('{data}/customers.parquet'))
SELECT pop.*, gs.mean_gap, gs.std_gap, ret.* EXCLUDE (customer_id), ea.* EXCLUDE (customer_id),
       c.loyalty_tier, c.acquisition_channel, c.country, date_diff('day', c.signed_up_at, {A}) days_since_signup,
       ntile(5) OVER (ORDER BY recency_days DESC) r_score, ntile(5) OVER (ORDER BY orders_lifetime) f_score,
       ntile(5) OVER (ORDER BY revenue_lifetime) m_score
FROM pop LEFT JOIN gs USING (customer_id) LEFT JOIN ret USING (customer_id) LEFT JOIN ea USING (customer_id)
LEFT JOIN c USING (customer_id)"""
duckdb.sql(f"COPY ({q}) TO '{out}'")
print(
    duckdb.sql(f"SELECT count(*), count(*) FILTER (WHERE 1=1) FROM '{out}'").fetchall()[0][0],
    "rows",
)
