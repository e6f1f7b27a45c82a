-- Feature adoption by tier: how many accounts of the tier used each feature, events and error rate.
with usage as (
    select f.feature_name, a.tier, f.account_id, f.success
    from {{ ref('stg_app__feature_usage') }} f
    join {{ ref('stg_app__accounts') }} a on a.account_id = f.account_id
),

tier_accounts as (
    select tier, count(*) as accounts from {{ ref('stg_app__accounts') }} group by 1
),

by_feature as (
    select feature_name, tier,
           count(distinct account_id) as adopting_accounts,
           count(*) as events,
           sum(case when success then 0 else 1 end) as failed_events
    from usage
    group by 1, 2
)

select
    b.feature_name || ':' || b.tier as feature_tier,
    b.feature_name,
    b.tier,
    b.adopting_accounts,
    t.accounts as tier_accounts,
    round(cast({{ safe_divide('b.adopting_accounts', 't.accounts') }} as numeric), 4) as adoption_rate,
    b.events,
    round(cast({{ safe_divide('b.failed_events', 'b.events') }} as numeric), 4) as error_rate
from by_feature b
join tier_accounts t on t.tier = b.tier
