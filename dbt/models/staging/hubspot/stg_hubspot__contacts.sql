-- Staging model of raw.hubspot_contacts: renames and unit conversions only.
with source as (
    select * from {{ source('hubspot', 'contacts') }}
),

renamed as (
    select
        contact_id,
        company_id,
        email,
        first_name,
        last_name,
        job_title,
        lifecycle_stage,
        lead_score,
        created_at
    from source
)

select * from renamed
