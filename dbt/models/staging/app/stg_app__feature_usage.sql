-- Staging model of raw.feature_usage: renames and unit conversions only.
with source as (
    select * from {{ source('app', 'feature_usage') }}
),

renamed as (
    select
        feature_event_id,
        session_id,
        user_id,
        account_id,
        feature_name,
        feature_category,
        used_at,
        success,
        error_code
    from source
)

select * from renamed
