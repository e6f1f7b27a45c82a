-- Per campaign: spend, impressions and clicks summed over its days.
select
    campaign_id,
    sum(spend_usd) as spend_usd,
    sum(impressions) as impressions,
    sum(clicks) as clicks
from {{ ref('stg_marketing__campaign_performance') }}
group by 1
