-- Funnel from campaign to deal: spend and clicks, attributed touches, MQLs, SQLs, deals and wins
-- (deals are credited to the campaign that produced the contact's MQL).
with campaigns as (select * from {{ ref('stg_marketing__campaigns') }}),

performance as (
    select campaign_id, sum(spend_usd) as spend_usd, sum(impressions) as impressions, sum(clicks) as clicks
    from {{ ref('stg_marketing__campaign_performance') }} group by 1
),

touches as (
    select campaign_id, count(*) as touchpoints, sum(attribution_weight) as attributed_contacts
    from {{ ref('stg_marketing__attribution_touchpoints') }} group by 1
),

mqls as (select * from {{ ref('stg_marketing__mqls') }}),

deals as (select * from {{ ref('stg_hubspot__deals') }}),

lead_outcomes as (
    select m.campaign_id,
           count(distinct m.mql_id) as mqls,
           count(distinct case when m.converted_to_sql then m.mql_id end) as sqls,
           count(distinct d.deal_id) as deals,
           count(distinct case when d.is_won then d.deal_id end) as won_deals,
           sum(case when d.is_won then d.amount_usd else 0 end) as won_amount_usd
    from mqls m
    left join deals d on d.contact_id = m.contact_id and d.created_at >= m.mql_at
    group by 1
)

select
    c.campaign_id,
    c.campaign_name,
    c.channel,
    round(cast(coalesce(p.spend_usd, 0) as numeric), 2) as spend_usd,
    coalesce(p.impressions, 0) as impressions,
    coalesce(p.clicks, 0) as clicks,
    coalesce(t.touchpoints, 0) as touchpoints,
    round(cast(coalesce(t.attributed_contacts, 0) as numeric), 2) as attributed_contacts,
    coalesce(l.mqls, 0) as mqls,
    coalesce(l.sqls, 0) as sqls,
    coalesce(l.deals, 0) as deals,
    coalesce(l.won_deals, 0) as won_deals,
    coalesce(l.won_amount_usd, 0) as won_amount_usd,
    {{ safe_divide('coalesce(p.spend_usd, 0)', 'coalesce(l.mqls, 0)') }} as cost_per_mql_usd
from campaigns c
left join performance p on p.campaign_id = c.campaign_id
left join touches t on t.campaign_id = c.campaign_id
left join lead_outcomes l on l.campaign_id = c.campaign_id
