-- Per campaign: MQLs, SQLs, and the deals their contacts opened after becoming MQLs.
select
    m.campaign_id,
    count(distinct m.mql_id) as mqls,
    count(distinct case when m.converted_to_sql then m.mql_id end) as sqls,
    count(distinct d.deal_id) as deals,
    count(distinct case when d.is_won then d.deal_id end) as won_deals,
    sum(case when d.is_won then d.amount_usd else 0 end) as won_amount_usd
from {{ ref('stg_marketing__mqls') }} as m
left join {{ ref('stg_hubspot__deals') }} as d
    on m.contact_id = d.contact_id and m.mql_at <= d.created_at
group by 1
