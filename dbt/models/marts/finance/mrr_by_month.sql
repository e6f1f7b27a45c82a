-- Monthly recurring revenue: the MRR of every subscription active at some point of the month,
-- new and churned MRR, and the revenue actually collected (successful charges) that month.
with months as (
    {{ month_spine() }}
),

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
    where status <> 'trial_expired'
),

active as (
    select
        m.month_start,
        count(distinct s.account_id) as active_accounts,
        sum(s.mrr_usd) as mrr_usd,
        sum(case when date_trunc('month', s.started_at) = m.month_start then s.mrr_usd else 0 end) as new_mrr_usd,
        sum(case when s.ended_at is not null and date_trunc('month', s.ended_at) = m.month_start
                 then s.mrr_usd else 0 end) as churned_mrr_usd
    from months m
    join subscriptions s
      on s.started_at < m.month_start + interval '1 month'
     and (s.ended_at is null or s.ended_at >= m.month_start)
    group by 1
),

collected as (
    select cast(date_trunc('month', created_at) as date) as month_start, sum(amount_usd) as collected_usd
    from {{ ref('stg_stripe__charges') }}
    group by 1
)

select
    m.month_start,
    coalesce(a.active_accounts, 0) as active_accounts,
    round(cast(coalesce(a.mrr_usd, 0) as numeric), 2) as mrr_usd,
    round(cast(coalesce(a.new_mrr_usd, 0) as numeric), 2) as new_mrr_usd,
    round(cast(coalesce(a.churned_mrr_usd, 0) as numeric), 2) as churned_mrr_usd,
    coalesce(c.collected_usd, 0) as collected_usd
from months m
left join active a on a.month_start = m.month_start
left join collected c on c.month_start = m.month_start
