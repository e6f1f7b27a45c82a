-- Funnel from campaign to deal: spend and clicks, attributed touches, MQLs, SQLs, deals and wins
-- (deals are credited to the campaign that produced the contact's MQL).
select
    c.campaign_id,
    c.campaign_name,
    c.channel,
    round(cast(coalesce(s.spend_usd, 0) as numeric), 2) as spend_usd,
    coalesce(s.impressions, 0) as impressions,
    coalesce(s.clicks, 0) as clicks,
    coalesce(t.touchpoints, 0) as touchpoints,
    round(cast(coalesce(t.attributed_contacts, 0) as numeric), 2) as attributed_contacts,
    coalesce(l.mqls, 0) as mqls,
    coalesce(l.sqls, 0) as sqls,
    coalesce(l.deals, 0) as deals,
    coalesce(l.won_deals, 0) as won_deals,
    coalesce(l.won_amount_usd, 0) as won_amount_usd,
    {{ safe_divide('coalesce(s.spend_usd, 0)', 'coalesce(l.mqls, 0)') }} as cost_per_mql_usd
from {{ ref('stg_marketing__campaigns') }} as c
left join {{ ref('int_marketing__campaign_spend') }} as s on c.campaign_id = s.campaign_id
left join {{ ref('int_marketing__campaign_touches') }} as t on c.campaign_id = t.campaign_id
left join {{ ref('int_marketing__campaign_leads') }} as l on c.campaign_id = l.campaign_id
