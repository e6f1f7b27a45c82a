-- Staging model of raw.hubspot_companies: renames and unit conversions only.
with source as (
    select * from {{ source('hubspot', 'companies') }}
),

renamed as (
    select
        company_id,
        account_id,
        name,
        domain,
        industry,
        employee_count,
        lifecycle_stage,
        is_customer,
        created_at
    from source
)

select * from renamed
