-- Staging model of raw.users: renames and unit conversions only.
with source as (
    select * from {{ source('app', 'users') }}
),

renamed as (
    select
        user_id,
        account_id,
        email,
        first_name,
        last_name,
        role,
        permissions,
        created_at,
        last_login_at,
        state,
        city,
        last_login_ip
    from source
)

select * from renamed
