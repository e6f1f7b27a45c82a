-- Monthly recurring revenue: the MRR of every subscription active at some point of the month,
-- new and churned MRR (subscriptions that started or ended that month), and the revenue actually
-- collected (successful charges) that month.
with months as (
    {{ month_spine() }}
),

active as (
    select
        month_start,
        count(distinct account_id) as active_accounts,
        sum(mrr_usd) as mrr_usd,
        sum(case when started_this_month then mrr_usd else 0 end) as new_mrr_usd,
        sum(case when ended_this_month then mrr_usd else 0 end) as churned_mrr_usd
    from {{ ref('int_finance__subscription_months') }}
    group by 1
)

select
    m.month_start,
    coalesce(a.active_accounts, 0) as active_accounts,
    round(cast(coalesce(a.mrr_usd, 0) as numeric), 2) as mrr_usd,
    round(cast(coalesce(a.new_mrr_usd, 0) as numeric), 2) as new_mrr_usd,
    round(cast(coalesce(a.churned_mrr_usd, 0) as numeric), 2) as churned_mrr_usd,
    coalesce(c.collected_usd, 0) as collected_usd
from months as m
left join active as a on m.month_start = a.month_start
left join {{ ref('int_finance__collected_by_month') }} as c on m.month_start = c.month_start
