-- Staging model of raw.hubspot_tickets: renames and unit conversions only.
with source as (
    select * from {{ source('hubspot', 'tickets') }}
),

renamed as (
    select
        ticket_id,
        company_id,
        account_id,
        subject,
        category,
        priority,
        pipeline_stage,
        created_at,
        first_reply_at,
        closed_at
    from source
)

select * from renamed
