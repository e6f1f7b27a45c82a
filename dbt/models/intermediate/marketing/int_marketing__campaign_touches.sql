-- Per campaign: attribution touchpoints and the contacts they are credited with (sum of weights).
select
    campaign_id,
    count(*) as touchpoints,
    sum(attribution_weight) as attributed_contacts
from {{ ref('stg_marketing__attribution_touchpoints') }}
group by 1
