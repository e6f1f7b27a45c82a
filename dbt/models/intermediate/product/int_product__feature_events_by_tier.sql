-- Per feature and tier: accounts that used it, events and failed events.
select
    f.feature_name,
    a.tier,
    count(distinct f.account_id) as adopting_accounts,
    count(*) as events,
    sum(case when f.success then 0 else 1 end) as failed_events
from {{ ref('stg_app__feature_usage') }} as f
inner join {{ ref('stg_app__accounts') }} as a on f.account_id = a.account_id
group by 1, 2
