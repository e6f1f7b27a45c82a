-- Feature adoption by tier: how many accounts of the tier used each feature, events and error rate.
with tier_accounts as (
    select
        tier,
        count(*) as accounts
    from {{ ref('stg_app__accounts') }}
    group by 1
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
from {{ ref('int_product__feature_events_by_tier') }} as b
inner join tier_accounts as t on b.tier = t.tier
