-- Staging model of raw.page_views: renames and unit conversions only.
with source as (
    select * from {{ source('app', 'page_views') }}
),

renamed as (
    select
        page_view_id,
        session_id,
        user_id,
        page_path,
        viewed_at,
        time_on_page_seconds,
        is_exit
    from source
)

select * from renamed
