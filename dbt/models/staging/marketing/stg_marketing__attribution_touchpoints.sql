-- Staging model of raw.attribution_touchpoints: renames and unit conversions only.
with source as (
    select * from {{ source('marketing', 'attribution_touchpoints') }}
),

renamed as (
    select
        touchpoint_id,
        contact_id,
        campaign_id,
        channel,
        touch_position,
        journey_length,
        touched_at,
        attribution_weight
    from source
)

select * from renamed
