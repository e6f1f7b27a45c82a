-- One row per paid subscription and month it was active in: its MRR, and whether it started or
-- ended that month (the inputs of new and churned MRR).
with months as (
    {{ month_spine() }}
),

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
    where status <> 'trial_expired'
)

select
    m.month_start,
    s.subscription_id,
    s.account_id,
    s.mrr_usd,
    date_trunc('month', s.started_at) = m.month_start as started_this_month,
    coalesce(date_trunc('month', s.ended_at) = m.month_start, false) as ended_this_month
from months as m
inner join subscriptions as s
    on
        m.month_start + interval '1 month' > s.started_at
        and (s.ended_at is null or m.month_start <= s.ended_at)
