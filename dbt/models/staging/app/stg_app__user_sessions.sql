-- Staging model of raw.user_sessions: renames and unit conversions only.
with source as (
    select * from {{ source('app', 'user_sessions') }}
),

renamed as (
    select
        session_id,
        user_id,
        account_id,
        started_at,
        ended_at,
        duration_seconds,
        device_type,
        ip_address,
        state,
        city
    from source
)

select * from renamed
